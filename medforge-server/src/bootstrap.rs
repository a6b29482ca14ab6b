//! The first admin: created when `serve` starts on a database without a
//! single user, so that a fresh install can be signed into straight away
//! (no shell, no `medforge user add`). Nothing happens once any user exists.

use std::path::PathBuf;

use anyhow::Context;

use medforge_core::model::Email;
use medforge_core::store::{Store, StoreError};

use crate::config::Config;

/// The file the credentials are written to, inside `data_dir`.
pub const CREDENTIALS_FILE: &str = "first-admin.txt";

/// The account [`first_admin`] created.
#[derive(Debug)]
pub struct FirstAdmin {
    pub email: Email,
    /// Shown once on a terminal; otherwise only in [`FirstAdmin::file`].
    pub password: String,
    /// `<data_dir>/first-admin.txt`, readable by the server's user alone.
    pub file: PathBuf,
}

/// Creates `admin@<base_domain>` with a random password when the database
/// has no users, and writes the credentials to `<data_dir>/first-admin.txt`
/// (mode 0600). `None` when there are users already, or when another
/// server sharing the database created the account first.
pub async fn first_admin(config: &Config, store: &dyn Store) -> anyhow::Result<Option<FirstAdmin>> {
    if store.count_users().await.context("counting users")? > 0 {
        return Ok(None);
    }
    let email: Email = format!("admin@{}", config.base_domain)
        .parse::<Email>()
        .with_context(|| format!("first admin's email admin@{}", config.base_domain))?;
    // 120 random bits in 24 base32 characters: typeable, inside the policy.
    let mut bytes = [0u8; 15];
    rand::fill(&mut bytes);
    let password = data_encoding::BASE32_NOPAD.encode(&bytes).to_lowercase();
    let new = medforge_core::auth::new_user(email.clone(), &password)?.admin();
    match store.create_user(new).await {
        Ok(_) => {}
        Err(StoreError::EmailTaken) => return Ok(None),
        Err(e) => return Err(e).context("creating the first admin"),
    }
    std::fs::create_dir_all(&config.data_dir).with_context(|| config.data_dir.display().to_string())?;
    let file = config.data_dir.join(CREDENTIALS_FILE);
    // A file left from an earlier database would not match this account.
    let _ = std::fs::remove_file(&file);
    let text = format!(
        "# The first MedForge admin, created on the first start.\n\
         # Sign in, change the password on the Account page, then delete this file.\n\
         email = {email}\npassword = {password}\n"
    );
    crate::stack::write_private(&file, text.as_bytes())?;
    Ok(Some(FirstAdmin { email, password, file }))
}

/// Tells whoever started the server how to sign in. The password goes to
/// the terminal only when stderr is one: a service's stderr ends up in the
/// journal, and secrets stay out of logs (the file has it).
pub fn announce(admin: &FirstAdmin, ui_url: &str) {
    use std::io::IsTerminal;
    eprintln!("medforge: created the first admin account; sign in at {ui_url}/login");
    eprintln!("medforge:   email:    {}", admin.email);
    if std::io::stderr().is_terminal() {
        eprintln!("medforge:   password: {}", admin.password);
        eprintln!(
            "medforge:   (also in {}; change it on the Account page, then delete the file)",
            admin.file.display()
        );
    } else {
        eprintln!("medforge:   password: in {} (readable by this user only)", admin.file.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medforge_core::model::Role;
    use medforge_core::store::SqliteStore;

    #[tokio::test]
    async fn the_first_start_creates_one_admin_and_later_starts_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config =
            Config { data_dir: dir.path().join("data"), base_domain: "lab.example.org".into(), ..Config::default() };
        let store = SqliteStore::in_memory().await.expect("store");
        let admin = first_admin(&config, &store).await.expect("bootstrap").expect("created");
        assert_eq!(admin.email.to_string(), "admin@lab.example.org");
        let (user, hash) = store.user_credentials(&admin.email).await.expect("query").expect("user");
        assert_eq!(user.role, Role::Admin);
        assert!(user.can_use_internal);
        assert!(medforge_core::auth::verify_password(&admin.password, &hash), "the password printed signs in");
        let text = std::fs::read_to_string(&admin.file).expect("credentials file");
        assert!(text.contains(&format!("password = {}\n", admin.password)));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&admin.file).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "only the server's user may read it");
        assert!(first_admin(&config, &store).await.expect("second start").is_none());
        assert_eq!(store.count_users().await.expect("count"), 1);
    }
}
