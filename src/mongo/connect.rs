//! Connecting to MongoDB from the settings, and turning driver errors into one line that names the
//! cause: unreachable host, authentication failed, missing privilege, database absent.
//! Credentials travel inside the driver's options only: never on a command line, never in a message.

use std::time::Duration;

use mongodb::bson::doc;
use mongodb::options::{ClientOptions, Credential, ServerAddress};
use mongodb::Client;

use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secret;

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct MongoTarget {
    /// A host name, or a whole `mongodb://` / `mongodb+srv://` URI.
    pub host: String,
    pub port: u16,
    /// Empty = no authentication. The auth database is `admin`.
    pub user: String,
    pub password: Secret,
    /// Restores write through this target: a denied write says how to give a user that may.
    pub writes: bool,
    /// `user` is the restore user (`restore_db_user`, `--db-user`): it replaces credentials a URI
    /// carries, and an authentication failure names its keys.
    pub restore_user: bool,
}

impl MongoTarget {
    /// The same server, for restores (`user`: the restore user, when one is given).
    pub fn for_restores(&self, user: Option<(&str, Secret)>) -> MongoTarget {
        let mut target = MongoTarget {
            writes: true,
            ..self.clone()
        };
        if let Some((user, password)) = user {
            target.user = user.to_string();
            target.password = password;
            target.restore_user = true;
        }
        target
    }

    /// `host:port`, or the URI's hosts without credentials, for messages.
    pub fn describe(&self) -> String {
        if self.is_uri() {
            let rest = self
                .host
                .split_once("://")
                .map(|x| x.1)
                .unwrap_or(&self.host);
            let rest = rest.rsplit_once('@').map(|x| x.1).unwrap_or(rest);
            rest.split(['/', '?']).next().unwrap_or(rest).to_string()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn is_uri(&self) -> bool {
        self.host.starts_with("mongodb://") || self.host.starts_with("mongodb+srv://")
    }
}

/// A connected client plus what messages need to know.
#[derive(Clone)]
pub struct Mongo {
    pub client: Client,
    pub target: MongoTarget,
}

/// Connects and checks the server answers (and the credentials work) with one `ping`.
pub async fn connect(target: &MongoTarget) -> Result<Mongo> {
    let mut options = if target.is_uri() {
        ClientOptions::parse(&target.host).await.map_err(|e| {
            Error::config(format!(
                "db_host: not a valid MongoDB URI: {}",
                first_line(&e.to_string())
            ))
        })?
    } else {
        let mut o = ClientOptions::default();
        o.hosts = vec![ServerAddress::Tcp {
            host: target.host.clone(),
            port: Some(target.port),
        }];
        // Talk to the named member itself (a secondary is the recommended source).
        o.direct_connection = Some(true);
        o
    };
    if !target.user.is_empty() && (options.credential.is_none() || target.restore_user) {
        options.credential = Some(
            Credential::builder()
                .username(target.user.clone())
                .password(target.password.expose().to_string())
                .source("admin".to_string())
                .build(),
        );
    }
    options.app_name = Some("mongo-oss-backup".into());
    options
        .server_selection_timeout
        .get_or_insert(Duration::from_secs(10));
    options
        .connect_timeout
        .get_or_insert(Duration::from_secs(10));
    let client = Client::with_options(options)
        .map_err(|e| Error::config(format!("db_host: {}", first_line(&e.to_string()))))?;
    let mongo = Mongo {
        client,
        target: target.clone(),
    };
    mongo
        .client
        .database("admin")
        .run_command(doc! {"ping": 1})
        .await
        .map_err(|e| mongo.error(e, "connect"))?;
    Ok(mongo)
}

impl Mongo {
    /// The names of the collections (and views) of database `db`.
    pub async fn collection_names(&self, db: &str) -> Result<Vec<String>> {
        self.client
            .database(db)
            .list_collection_names()
            .await
            .map_err(|e| self.error(e, &format!("list the collections of {db}")))
    }

    /// Drops `db.name`; a missing collection is no error.
    pub async fn drop_collection(&self, db: &str, name: &str) -> Result<()> {
        self.client
            .database(db)
            .collection::<mongodb::bson::Document>(name)
            .drop()
            .await
            .map_err(|e| self.error(e, &format!("drop {db}.{name}")))
    }

    /// One line naming the cause of a driver error; `doing` says what we were doing ("dump app.users").
    pub fn error(&self, e: mongodb::error::Error, doing: &str) -> Error {
        classify(&self.target, e, doing)
    }
}

pub fn classify(target: &MongoTarget, e: mongodb::error::Error, doing: &str) -> Error {
    use mongodb::error::ErrorKind as K;
    let server = target.describe();
    let (kind, message) = match e.kind.as_ref() {
        K::ServerSelection { .. } => (
            ErrorKind::MongoUnreachable,
            format!("cannot reach MongoDB at {server}: {}", unreachable_cause(&e)),
        ),
        K::Authentication { .. } => (
            ErrorKind::MongoAuth,
            format!(
                "MongoDB authentication failed for user \"{}\" at {server} (auth database admin): check {}",
                target.user,
                match target.restore_user {
                    true => "restore_db_user and restore_db_passwd (or --db-user and MONGO_OSS_RESTORE_PASSWD)",
                    false => "db_user and db_passwd",
                }
            ),
        ),
        K::Command(c) if c.code == 18 => (
            ErrorKind::MongoAuth,
            format!("MongoDB authentication failed for user \"{}\" at {server}", target.user),
        ),
        K::Command(c) if c.code == 13 => (
            ErrorKind::MongoUnauthorized,
            format!(
                "MongoDB user \"{}\" is not allowed to {doing}: {}{}",
                target.user,
                first_line(&c.message),
                match target.writes {
                    true => "; a restore writes: give it a user that may (role restore, or readWrite and dbAdmin on the target) with --db-user NAME and MONGO_OSS_RESTORE_PASSWD, or restore_db_user/restore_db_passwd",
                    false => "",
                }
            ),
        ),
        K::Io(_) | K::ConnectionPoolCleared { .. } => (
            ErrorKind::MongoUnreachable,
            format!("lost the connection to MongoDB at {server} during {doing}: {}", first_line(&e.to_string())),
        ),
        K::Command(c) => (
            ErrorKind::Mongo,
            format!("MongoDB refused to {doing}: {} (code {})", short(&c.message), c.code),
        ),
        K::Write(mongodb::error::WriteFailure::WriteError(w)) => (
            ErrorKind::Mongo,
            format!("MongoDB refused to {doing}: {} (code {})", short(&w.message), w.code),
        ),
        _ => (
            ErrorKind::Mongo,
            format!("MongoDB error during {doing}: {}", short(&e.to_string())),
        ),
    };
    Error::new(kind, message).with_source(e)
}

/// The socket-level reason behind a server-selection timeout, in a few words.
fn unreachable_cause(e: &mongodb::error::Error) -> String {
    let text = e.to_string().to_ascii_lowercase();
    for (needle, cause) in [
        ("connection refused", "connection refused"),
        ("failed to lookup", "host name not found"),
        ("no such host", "host name not found"),
        ("name or service not known", "host name not found"),
        ("timed out", "timed out"),
        ("replicaset", "no member of the replica set answered"),
    ] {
        if text.contains(needle) {
            return cause.to_string();
        }
    }
    "no server answered within 10 s".to_string()
}

/// The first line of a server message, at most 300 characters.
fn short(s: &str) -> String {
    let line = first_line(s);
    match line.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

pub fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}
