//! The demo's admin user: `scopegate demo` turns the console on with a fresh random
//! password and prints where to sign in (the password is printed once, like the demo
//! tokens' secrets, and only its argon2id hash is written to the demo's config).

use std::net::SocketAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use zeroize::Zeroizing;

/// The demo's admin user name.
pub const USER: &str = "admin";

/// The password generated in this process, printed once by [`print`]; kept here so the
/// demo's own code needs no more than two calls.
static PASSWORD: std::sync::Mutex<Option<Zeroizing<String>>> = std::sync::Mutex::new(None);

/// Adds `admin.users` with a freshly generated password to the demo's gateway config.
pub fn enable(config: &mut serde_yaml::Mapping) -> Result<(), String> {
    let mut bytes = Zeroizing::new([0u8; 15]);
    getrandom::fill(bytes.as_mut()).map_err(|e| format!("no randomness: {e}"))?;
    let password = Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_ref()));
    let hash = super::auth::hash_password(password.as_bytes())?;
    let mut user = serde_yaml::Mapping::new();
    user.insert("name".into(), USER.into());
    user.insert("password_hash".into(), hash.into());
    let mut admin = serde_yaml::Mapping::new();
    admin.insert(
        "users".into(),
        serde_yaml::Value::Sequence(vec![user.into()]),
    );
    config.insert("admin".into(), admin.into());
    if let Ok(mut p) = PASSWORD.lock() {
        *p = Some(password);
    }
    Ok(())
}

/// Prints the console URL and its credentials (the password only in the run that made
/// it; a demo folder served again keeps its first run's password).
pub fn print(admin: SocketAddr) {
    let password = PASSWORD.lock().ok().and_then(|mut p| p.take());
    match password {
        Some(password) => {
            println!("# admin console (user {USER}, password shown once):");
            println!(
                "#   http://{admin}/console/   {USER} / {}",
                password.as_str()
            );
            println!("# admin API:");
            println!(
                "curl -s -u '{USER}:{}' http://{admin}/api/v1/tokens\n",
                password.as_str()
            );
        }
        None => println!(
            "# admin console: http://{admin}/console/ (user {USER}; the password was printed \
             when this demo folder was made)\n"
        ),
    }
}
