//! A user of the admin API and console, as validated from `admin:`.

/// One admin user. `Debug` leaves the hash out.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminUser {
    pub name: String,
    /// An argon2id PHC string (checked to parse).
    pub password_hash: String,
}

impl std::fmt::Debug for AdminUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminUser")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
