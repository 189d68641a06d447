//! `scopegate demo`: the gateway on a config folder it names, in front of a built-in echo
//! upstream, with fresh demo tokens; it prints the curl lines to try and the exact
//! commands (`--config <folder>/scopegate.yaml`) for the next steps.
//!
//! The folder is a private temporary one, removed on every exit path, or `--dir DIR`,
//! created on the first run and kept (a later `demo --dir DIR` serves it again). Serving,
//! reloading (file watch + SIGHUP) and draining are `serve`'s own ([`serve_bound`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tokio::net::TcpListener;
use zeroize::Zeroizing;

use super::echo::serve_echo;
use super::serve::{bind, init_tracing, log_format, run_to_exit, serve_bound, Termination};
use super::LogFormatArg;
use crate::config;
use crate::config::yamlsrc::edit::quote_scalar;
use crate::gateway::manage::secrets::{new_secret, new_sid};

/// The shipped example config, used when `config/scopegate.yaml` is not found (the
/// binary was installed elsewhere).
const EXAMPLE_CONFIG: &str = include_str!("../../config/scopegate.yaml");

/// The demo's token set: (name, scopes).
const DEMO_TOKENS: [(&str, &str); 2] = [
    ("demo-reader", "[{api: campaigns, methods: [GET]}]"),
    (
        "demo-writer",
        "[{api: campaigns, methods: [GET, POST]}, {api: reports, methods: [GET]}]",
    ),
];
const DEMO_ACCOUNT: &str = "IRdemo";

/// What `scopegate demo` was asked for.
#[derive(Debug, Clone)]
pub struct DemoArgs {
    /// The example gateway config a new folder starts from.
    pub example: PathBuf,
    /// A folder to create and keep (or serve again); `None`: a temporary one.
    pub dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    /// Where the echo upstream of a new folder listens (port 0: any free port).
    pub upstream_listen: SocketAddr,
    pub log_format: Option<LogFormatArg>,
    pub tls: bool,
}

pub fn run(args: DemoArgs) -> ExitCode {
    run_to_exit(async move {
        match demo(args).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("scopegate demo: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// A generated demo token: (name, SID, secret).
type Credential = (&'static str, String, Zeroizing<String>);

async fn demo(args: DemoArgs) -> Result<ExitCode, String> {
    // SIGTERM/SIGINT are taken over before anything is bound or written, so that every
    // exit goes through the clean-up below.
    let termination = Termination::new();
    let existing = args
        .dir
        .as_ref()
        .filter(|d| d.join("scopegate.yaml").exists());
    let (folder, creds, main, admin) = match existing {
        Some(dir) => {
            let folder = Folder::kept(dir.clone());
            let (main, admin) = serve_existing(&folder, &args).await?;
            (folder, Vec::new(), main, admin)
        }
        None => {
            let example = std::fs::read_to_string(&args.example)
                .unwrap_or_else(|_| EXAMPLE_CONFIG.to_owned());
            // Everything is bound before anything is written: a busy port leaves nothing
            // behind.
            let main = bind(args.listen.unwrap_or(([127, 0, 0, 1], 8080).into()), "")
                .await
                .map_err(|e| other_address(e, "--listen"))?;
            let admin = bind(
                args.admin_listen.unwrap_or(([127, 0, 0, 1], 9901).into()),
                " (admin)",
            )
            .await
            .map_err(|e| other_address(e, "--admin-listen"))?;
            let echo = bind(args.upstream_listen, " (demo echo upstream)")
                .await
                .map_err(|e| other_address(e, "--upstream-listen"))?;
            let addrs = Addrs {
                main: local(&main)?,
                admin: local(&admin)?,
                echo: local(&echo)?,
            };
            tokio::spawn(serve_echo(echo));
            let folder = Folder::create(args.dir.clone())?;
            let creds = write_folder(&folder.path, &example, addrs, args.tls).map_err(|e| {
                format!(
                    "cannot write the demo folder {}: {e}",
                    folder.path.display()
                )
            })?;
            (folder, creds, main, admin)
        }
    };
    let config_path = folder.path.join("scopegate.yaml");
    let config = config::load(&config_path).map_err(|e| e.to_string())?;
    init_tracing(log_format(args.log_format, config.settings.log_format));
    let tls = config.settings.tls.is_some();
    let code = serve_bound(
        config,
        config_path,
        main,
        admin,
        termination,
        1,
        |running| {
            print_guide(running, &folder, &creds, tls);
            crate::gateway::console::demo::print(running.admin_addr);
        },
    )
    .await;
    drop(folder);
    Ok(code)
}

/// An existing demo folder served again: its own config and tokens, its echo upstream on
/// the address the config names.
async fn serve_existing(
    folder: &Folder,
    args: &DemoArgs,
) -> Result<(TcpListener, TcpListener), String> {
    let config = config::load(&folder.path.join("scopegate.yaml")).map_err(|e| e.to_string())?;
    let s = &config.settings;
    let main = bind(args.listen.unwrap_or(s.listen), "")
        .await
        .map_err(|e| other_address(e, "--listen"))?;
    let admin = bind(args.admin_listen.unwrap_or(s.admin_listen), " (admin)")
        .await
        .map_err(|e| other_address(e, "--admin-listen"))?;
    let mut echoes: Vec<SocketAddr> = s
        .upstreams
        .iter()
        .filter_map(|up| up.authority.as_str().parse().ok())
        .filter(|a: &SocketAddr| a.ip().is_loopback())
        .collect();
    echoes.sort();
    echoes.dedup();
    for addr in echoes {
        tokio::spawn(serve_echo(bind(addr, " (demo echo upstream)").await?));
    }
    Ok((main, admin))
}

/// A bind error with the flag that picks another address.
fn other_address(error: String, flag: &str) -> String {
    format!("{error}\n  {flag} ADDR picks another address (port 0: any free port)")
}

fn local(l: &TcpListener) -> Result<SocketAddr, String> {
    l.local_addr().map_err(|e| e.to_string())
}

struct Addrs {
    main: SocketAddr,
    admin: SocketAddr,
    echo: SocketAddr,
}

/// The demo's config folder; a temporary one is removed when this is dropped (every
/// return, error or signal path of [`demo`] drops it).
struct Folder {
    path: PathBuf,
    temporary: bool,
}

impl Folder {
    fn kept(path: PathBuf) -> Folder {
        Folder {
            path: config::absolute(&path),
            temporary: false,
        }
    }

    /// `dir` (new or empty), or a fresh private temporary folder.
    fn create(dir: Option<PathBuf>) -> Result<Folder, String> {
        let (path, temporary) = match dir {
            Some(d) => (config::absolute(&d), false),
            None => {
                let mut salt = [0u8; 4];
                getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
                let salt: String = salt.iter().map(|b| format!("{b:02x}")).collect();
                let name = format!("scopegate-demo-{}-{salt}", std::process::id());
                (std::env::temp_dir().join(name), true)
            }
        };
        if std::fs::read_dir(&path).is_ok_and(|mut entries| entries.next().is_some()) {
            return Err(format!(
                "{} is not empty and holds no scopegate.yaml: give a new folder to --dir",
                path.display()
            ));
        }
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let folder = Folder { path, temporary };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&folder.path, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("cannot protect {}: {e}", folder.path.display()))?;
        }
        Ok(folder)
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Writes `scopegate.yaml` (the example, pointed at the bound addresses and the echo
/// upstream) and `tokens.yaml` with fresh demo tokens; returns their credentials.
fn write_folder(
    dir: &Path,
    example: &str,
    addrs: Addrs,
    tls: bool,
) -> Result<Vec<Credential>, Box<dyn std::error::Error>> {
    let mut doc: serde_yaml::Value = serde_yaml::from_str(example)?;
    if let Some(ups) = doc.get_mut("upstreams").and_then(|u| u.as_mapping_mut()) {
        for (_, up) in ups.iter_mut() {
            if let Some(m) = up.as_mapping_mut() {
                m.insert("url".into(), format!("http://{}", addrs.echo).into());
            }
        }
    }
    let m = doc
        .as_mapping_mut()
        .ok_or("the example config is not a mapping")?;
    m.insert("listen".into(), addrs.main.to_string().into());
    m.insert("admin_listen".into(), addrs.admin.to_string().into());
    m.insert("tokens_file".into(), "tokens.yaml".into());
    m.remove("tls");
    m.remove("state_dir");
    crate::gateway::console::demo::enable(m)?;
    // The catalog comes from the demo API's own OpenAPI document (config/demo-openapi.yaml).
    m.insert("apis".into(), crate::config::openapi::demo_apis()?);
    if tls {
        let cert = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])?;
        std::fs::write(dir.join("cert.pem"), cert.cert.pem())?;
        write_private(&dir.join("key.pem"), &cert.key_pair.serialize_pem())?;
        let mut t = serde_yaml::Mapping::new();
        t.insert("cert".into(), "cert.pem".into());
        t.insert("key".into(), "key.pem".into());
        m.insert("tls".into(), t.into());
    }
    let api_version = doc
        .get("api_versions")
        .and_then(|v| v.as_sequence())
        .and_then(|s| s.last())
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    std::fs::write(
        dir.join("scopegate.yaml"),
        format!(
            "# written by `scopegate demo` from the example config; edit freely\n{}",
            serde_yaml::to_string(&doc)?
        ),
    )?;

    let mut tokens_yaml = format!(
        "# demo tokens, generated by `scopegate demo`; secrets were printed once\naccounts:\n  - id: {DEMO_ACCOUNT}\n    name: Demo account\n    tokens:\n"
    );
    let mut creds = Vec::new();
    for (name, scopes) in DEMO_TOKENS {
        let sid = new_sid()?;
        let secret = new_secret()?;
        let hash = crate::domain::model::SecretHash::of_secret(secret.as_bytes()).to_stored();
        tokens_yaml.push_str(&format!(
            "      - sid: {sid}\n        name: {name}\n        description: {}\n        primary_contact: demo@example.com\n{}        auth_token_hash: \"{hash}\"\n        scopes: {scopes}\n",
            quote_scalar(&format!("Demo token {name}")),
            api_version
                .as_ref()
                .map(|v| format!("        api_version: {}\n", quote_scalar(v)))
                .unwrap_or_default(),
        ));
        creds.push((name, sid, secret));
    }
    write_private(&dir.join("tokens.yaml"), &tokens_yaml)?;
    Ok(creds)
}

/// What the user sees once the demo serves: where its files are, curl lines to try, and
/// the commands for the next steps, each with `--config` pointing at the demo's folder.
fn print_guide(running: &crate::Running, folder: &Folder, creds: &[Credential], tls: bool) {
    let addr = running.addr;
    let admin = running.admin_addr;
    let config = folder.path.join("scopegate.yaml");
    let prog = program();
    let cfg = format!("--config {}", shell_quote(&config.display().to_string()));
    // With TLS, curl trusts the generated certificate explicitly (no `-k`).
    let (base, curl) = if tls {
        let ca = shell_quote(&folder.path.join("cert.pem").display().to_string());
        (
            format!("https://localhost:{}", addr.port()),
            format!("curl --cacert {ca}"),
        )
    } else {
        (format!("http://{addr}"), "curl".to_owned())
    };
    let campaigns = format!("{base}/Mediapartners/{DEMO_ACCOUNT}/Campaigns");
    let mut out = String::new();
    let mut line = |s: &str| {
        out.push_str(s);
        out.push('\n');
    };
    line(&format!(
        "scopegate demo is running on {base} (admin on http://{admin}); Ctrl-C stops it."
    ));
    let dir = shell_quote(&folder.path.display().to_string());
    line(&format!(
        "Config folder: {dir} ({})",
        if folder.temporary {
            "temporary: removed when the demo stops; `demo --dir DIR` keeps one".to_owned()
        } else {
            format!("kept; `{prog} demo --dir {dir}` serves it again")
        }
    ));
    line("The gateway forwards allowed requests to a built-in echo upstream that shows what it received.");
    if let [(_, reader_sid, reader_secret), (_, writer_sid, writer_secret), ..] = creds {
        let reader = format!("{reader_sid}:{}", reader_secret.as_str());
        let writer = format!("{writer_sid}:{}", writer_secret.as_str());
        line("");
        line(&format!(
            "Demo tokens (account {DEMO_ACCOUNT}; secrets shown once):"
        ));
        for (name, sid, secret) in creds {
            line(&format!("  {name:<12} {sid}:{}", secret.as_str()));
        }
        line("\n# 200: the reader may GET its own account's campaigns (the echo upstream answers)");
        line(&format!("{curl} -i -u '{reader}' {campaigns}"));
        line("\n# 403: the reader may not POST (outside its scopes)");
        line(&format!(
            "{curl} -i -u '{reader}' -X POST -d '{{}}' {campaigns}"
        ));
        line("\n# 403: no token may reach another account's resources");
        line(&format!(
            "{curl} -i -u '{writer}' {base}/Mediapartners/IRother/Campaigns"
        ));
        line("\n# 401: no credentials");
        line(&format!("{curl} -i {campaigns}"));
        line("\n# why the reader may not POST");
        line(&format!(
            "{prog} explain {cfg} --token {reader_sid} POST /Mediapartners/{DEMO_ACCOUNT}/Campaigns"
        ));
    }
    line("\nNext steps (in another terminal; the demo reloads its files on change and on SIGHUP):");
    line("# create your own token; it prints a curl line that this demo answers with 200");
    line(&format!(
        "{prog} token create {cfg} --account {DEMO_ACCOUNT} --name my-first-token --scope campaigns:GET"
    ));
    line("# list the tokens, audit them for unused scopes and overdue rotations");
    line(&format!("{prog} token list {cfg}"));
    line(&format!("{prog} audit {cfg}"));
    line("# per-token metrics");
    line(&format!(
        "curl -s http://{admin}/metrics | grep scopegate_requests_total"
    ));
    // Not `print!`: a closed stdout (`| head`) must not panic the gateway.
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush());
}

/// How to call this binary in a printed command: `scopegate` when that name on `PATH` is
/// this binary, else the path it was started by (`target/release/scopegate`).
fn program() -> String {
    let me = std::env::current_exe().ok();
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("scopegate"))
            .find(|p| p.is_file())
    });
    let same = |a: &Path, b: &Path| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if let (Some(me), Some(found)) = (&me, &on_path) {
        if same(me, found) {
            return "scopegate".to_owned();
        }
    }
    let arg0 = std::env::args().next().filter(|a| a.contains('/'));
    let shown = arg0
        .or_else(|| me.map(|p| p.display().to_string()))
        .unwrap_or_else(|| "scopegate".to_owned());
    shell_quote(&shown)
}

/// Quotes a word for a POSIX shell when it needs it.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@%=,".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Writes a file only the current user can read (the demo's key and token hashes).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(
            shell_quote("/tmp/a-b/scopegate.yaml"),
            "/tmp/a-b/scopegate.yaml"
        );
        assert_eq!(shell_quote("/tmp/my dir"), "'/tmp/my dir'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
