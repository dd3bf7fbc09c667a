//! A real PostgreSQL 15 server for the `db` plugin's tests.
//!
//! `initdb` and `pg_ctl` (Debian's postgresql-15, linked into
//! /usr/local/bin on this machine kind, or found in
//! /usr/lib/postgresql/*/bin) create a cluster in a temp dir and start it
//! on a free loopback port, with its Unix socket in the same temp dir. The
//! cluster has one password user (`backout`, scram-sha-256) and a database
//! `samia`; dropping the value stops the server (`pg_ctl stop -m
//! immediate`) and removes the dir.
//!
//! PostgreSQL refuses to run as root. When the tests run as root (as they
//! do on a fresh machine of this kind), the temp dir is handed to the
//! `postgres` system user that Debian's package creates, and `initdb` /
//! `pg_ctl` run as that user through `runuser -u postgres --` (util-linux).
//! Clients (`psql` here, the agent's plugin) connect over TCP with the
//! password, so they need no particular user.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The user that owns the cluster when the tests run as root.
const SYSTEM_USER: &str = "postgres";

/// A running PostgreSQL server in a temp dir.
pub struct Postgres {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub dbname: String,
    run_as: Option<String>,
}

/// A PostgreSQL server program: in PATH (`/usr/local/bin` links), or in
/// the newest `/usr/lib/postgresql/*/bin`.
pub fn server_program(name: &str) -> PathBuf {
    for dir in ["/usr/local/bin", "/usr/bin"] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .map(|v| v.join("bin").join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("{name} not found: scripts/install-parts.sh installs postgresql-15")
        })
}

/// A free loopback port (bound, then released for the server to take).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn running_as_root() -> bool {
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// uid and gid of a system user, from `id`.
fn ids_of(user: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, user]).output().unwrap();
        assert!(
            out.status.success(),
            "user {user} is missing (Debian's postgresql package creates it): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

fn check(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Postgres {
    /// Creates a cluster and starts it; returns once it accepts connections.
    /// For tests: without fsync (nothing here must outlive a crash of the
    /// machine).
    pub fn start() -> Postgres {
        Postgres::start_with(false, false)
    }

    /// [`Postgres::start`] with fsync and full-page writes on, as a
    /// production server runs: for benchmarks (`bench-fanout --journal
    /// postgres`) that compare it with SQLite, which syncs each commit.
    pub fn start_durable() -> Postgres {
        Postgres::start_with(true, false)
    }

    /// As [`Postgres::start`], with `ssl = on` and a server certificate
    /// (for `127.0.0.1` and `localhost`) signed by a CA made for it, at
    /// [`Postgres::ca_file`]; TCP clients without TLS are refused
    /// (`hostnossl … reject`).
    pub fn start_tls() -> Postgres {
        Postgres::start_with(false, true)
    }

    /// The CA certificate (PEM) that signed a [`Postgres::start_tls`]
    /// server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn start_with(durable: bool, tls: bool) -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        let run_as = running_as_root().then(|| SYSTEM_USER.to_string());
        let password = format!("pw-{:016x}", rand::random::<u64>());
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n")).unwrap();
        if let Some(user) = &run_as {
            let (uid, gid) = ids_of(user);
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).unwrap();
        }
        let pg = Postgres {
            port: free_port(),
            user: "backout".into(),
            password,
            dbname: "samia".into(),
            run_as,
            dir,
        };
        let data = pg.data_dir();
        let out = pg.server_command(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                &pg.user,
                &format!("--pwfile={}", pwfile.display()),
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        check("initdb", &out);
        std::fs::remove_file(&pwfile).unwrap();
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            pg.port,
            pg.dir.path().display()
        );
        if !durable {
            options.push_str(" -c fsync=off -c full_page_writes=off");
        }
        if tls {
            pg.serve_tls(&data);
            options.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        let out = pg.server_command(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                pg.dir.path().join("server.log").to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        check("pg_ctl start", &out);
        let out = pg.psql_in("postgres", &format!("CREATE DATABASE {}", pg.dbname));
        check("CREATE DATABASE", &out);
        pg
    }

    /// A CA (`ca.pem` beside the data) and the server's certificate and key
    /// in `data`, owned by the cluster's user; `pg_hba.conf` admits TCP
    /// clients over TLS only.
    fn serve_tls(&self, data: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Backout test PostgreSQL CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        std::fs::write(self.ca_file(), ca_cert.pem()).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut server = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        server
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let cert = server.signed_by(&key, &issuer).unwrap();
        let files = [
            ("server.crt", cert.pem()),
            ("server.key", key.serialize_pem()),
            (
                "pg_hba.conf",
                "local all all scram-sha-256\n\
                 hostssl all all 127.0.0.1/32 scram-sha-256\n\
                 hostnossl all all 127.0.0.1/32 reject\n"
                    .to_string(),
            ),
        ];
        for (name, text) in files {
            let path = data.join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            if let Some(user) = &self.run_as {
                let (uid, gid) = ids_of(user);
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
            }
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs a server program, as the system user when we are root.
    fn server_command(&self, program: &str, args: &[&str]) -> Output {
        let program = server_program(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        command
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The environment a client needs (libpq variables, password included).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PGHOST", "127.0.0.1".to_string()),
            ("PGPORT", self.port.to_string()),
            ("PGUSER", self.user.clone()),
            ("PGPASSWORD", self.password.clone()),
            ("PGDATABASE", self.dbname.clone()),
        ]
    }

    fn psql_in(&self, dbname: &str, sql: &str) -> Output {
        Command::new("psql")
            .args([
                "--no-psqlrc",
                "--no-align",
                "--tuples-only",
                "--quiet",
                "--set=ON_ERROR_STOP=1",
                "--dbname",
                dbname,
                "--command",
                sql,
            ])
            .envs(self.env())
            .env("PGDATABASE", dbname)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs SQL in the test database; returns its output, trimmed.
    pub fn try_sql(&self, sql: &str) -> Output {
        self.psql_in(&self.dbname, sql)
    }

    /// Runs SQL in the test database and returns its output (unaligned,
    /// tuples only), trimmed; panics on an error.
    pub fn sql(&self, sql: &str) -> String {
        let out = self.try_sql(sql);
        check(sql, &out);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A single number a query returns.
    pub fn number(&self, sql: &str) -> i64 {
        let text = self.sql(sql);
        text.parse()
            .unwrap_or_else(|_| panic!("`{sql}` returned `{text}`"))
    }

    /// Whether a table exists in `public`.
    pub fn has_table(&self, table: &str) -> bool {
        self.sql(&format!("SELECT to_regclass('public.{table}') IS NOT NULL")) == "t"
    }

    /// The ids recorded in `schema_migrations`, in order.
    pub fn applied(&self) -> Vec<String> {
        let text = self.sql("SELECT version FROM schema_migrations ORDER BY version");
        text.lines().map(str::to_string).collect()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self.server_command(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap_or_default(),
                "stop",
                "-m",
                "immediate",
            ],
        );
    }
}

/// One migration of the sample schema: id, up SQL, down SQL (None: no down file).
pub type Migration = (&'static str, &'static str, Option<&'static str>);

/// The seed's tables as five migrations; `005` is the "bad deploy" a
/// rollback undoes (with `004`).
pub const MIGRATIONS: &[Migration] = &[
    (
        "001_profiles",
        "CREATE TABLE profiles (id bigserial PRIMARY KEY, email text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());",
        Some("DROP TABLE profiles;"),
    ),
    (
        "002_orders",
        "CREATE TABLE orders (id bigserial PRIMARY KEY, profile_id bigint, total_cents bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now());",
        Some("DROP TABLE orders;"),
    ),
    (
        "003_payment_transactions",
        "CREATE TABLE payment_transactions (id bigserial PRIMARY KEY, order_id bigint, amount_cents bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now());",
        Some("DROP TABLE payment_transactions;"),
    ),
    (
        "004_orders_status",
        "ALTER TABLE orders ADD COLUMN status text NOT NULL DEFAULT 'new';",
        Some("ALTER TABLE orders DROP COLUMN status;"),
    ),
    (
        "005_secrets_providers",
        "CREATE TABLE secrets_providers (id bigserial PRIMARY KEY, name text NOT NULL);\nINSERT INTO secrets_providers (name) VALUES ('vault');",
        Some("DROP TABLE secrets_providers;"),
    ),
];

impl Postgres {
    /// Writes each migration's files into `dir` (no down file where the
    /// migration has none), creates `schema_migrations` and applies every
    /// up file, recording it.
    pub fn migrate_up(&self, dir: &Path, migrations: &[Migration]) {
        std::fs::create_dir_all(dir).unwrap();
        self.sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
        );
        for (id, up, down) in migrations {
            std::fs::write(dir.join(format!("{id}.up.sql")), up).unwrap();
            if let Some(down) = down {
                std::fs::write(dir.join(format!("{id}.down.sql")), down).unwrap();
            }
            self.sql(&format!(
                "BEGIN; {up} INSERT INTO schema_migrations (version) VALUES ('{id}'); COMMIT;"
            ));
        }
    }
}

impl Postgres {
    /// The libpq connection string of its database (the password apart).
    pub fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} dbname={} user={}",
            self.port, self.dbname, self.user
        )
    }

    /// A Backout journal store on this database.
    pub fn journal_store(&self) -> backout::journal::PostgresStore {
        backout::journal::PostgresStore::connect(&self.conninfo(), Some(&self.password)).unwrap()
    }

    /// The Backout journal in this database, walked from its first entry.
    pub fn journal_verdict(&self) -> backout::journal::Verdict {
        backout::journal::Journal::new(self.journal_store())
            .verify()
            .unwrap()
    }
}
