//! The journal in PostgreSQL, for coordinators that survive their host
//! (`journal = { postgres = "…", password_file = "…" }`). The same rows and
//! hash chain as SQLite (`entries`, `head`, `meta`), plus one `lease` row:
//! who leads, under which epoch, until when (on the database's clock).
//!
//! **The lease.** [`PostgresStore::take_lease`] is one conditional UPDATE:
//! the row is taken when it is free or expired (`expires_at <= now()`), and
//! the epoch goes up by one with every takeover; [`PostgresStore::renew`]
//! moves the expiry only while this holder's epoch is still the row's.
//! Times are the database's, so no coordinator's clock matters.
//!
//! **Fencing.** Every append locks the lease row (`FOR UPDATE`) in the same
//! transaction as its entries and writes nothing unless the row's epoch is
//! the one this store leads under: a stale leader's writes fail with
//! [`JournalError::Fenced`]. Before that, an append is refused at once,
//! without a round trip, while this store is not [`leading`] (a renewal
//! failed): since every command is journaled before it is sent, nothing is
//! dispatched from then on.
//!
//! The store's interface is synchronous (see `store.rs`); the client is
//! `tokio-postgres`, whose connections run on a runtime of their own (one
//! thread), and each call blocks the caller for its round trip, as
//! SQLite's fsync does. The password comes from a file and is never logged.
//!
//! [`leading`]: PostgresStore::leading

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio_postgres::{AsyncMessage, Client, NoTls};

use super::pg_tls::Rustls;

use super::chain::{self, Head, Row};
use super::record::{FORMAT, LeaseTaken, lease_end};
use super::store::{
    Entry, JournalError, JournalStore, NewEntry, Snapshot, Written, decode_rows, encode_entries,
};

pub struct PostgresStore {
    config: tokio_postgres::Config,
    /// Where the connections run.
    runtime: tokio::runtime::Handle,
    client: Mutex<Option<Client>>,
    /// Set (`journal.ca_file`): every connection is TLS, the server's
    /// certificate verified against that CA.
    tls: Option<Rustls>,
    /// `host=… dbname=…`, for messages (never the password).
    name: String,
    /// The epoch this store writes under (0: it never took the lease).
    epoch: AtomicU64,
    /// False from a failed renewal until the next good one.
    leading: AtomicBool,
    /// Set for good by [`PostgresStore::release`]: nothing is written and
    /// nothing renewed after it.
    released: AtomicBool,
}

/// The channel a leader `NOTIFY`s when it releases the lease; standbys
/// `LISTEN` on it and try the lease at once ([`PostgresStore::listen`]).
pub const LEASE_CHANNEL: &str = "backout_lease";

/// A lease just taken ([`PostgresStore::take_lease`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub epoch: u64,
    /// How the epoch before ended (`lease_end`'s words).
    pub previous: &'static str,
    /// From its end (release, or last renewal) to this takeover.
    pub vacant_ms: i64,
}

impl Taken {
    /// The journal's record of it, for `holder`.
    pub fn record(&self, holder: &str) -> LeaseTaken {
        LeaseTaken {
            epoch: self.epoch,
            holder: holder.to_string(),
            previous: self.previous.to_string(),
            vacant_ms: self.vacant_ms,
        }
    }
}

/// The lease row as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// The leader's advertised address (empty: released, or never taken).
    pub holder: String,
    pub epoch: u64,
    /// Whether it is still valid on the database's clock.
    pub live: bool,
    /// How long ago it was taken or last renewed, in milliseconds.
    pub age_ms: i64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entries (
    seq BIGINT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_run ON entries (run_id, seq);
CREATE TABLE IF NOT EXISTS head (
    id INT PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lease (
    id INT PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    renewed_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS coordinators (
    advertise TEXT PRIMARY KEY,
    seen_at TIMESTAMPTZ NOT NULL
);
INSERT INTO lease (id, holder, epoch, renewed_at, expires_at)
    VALUES (1, '', 0, now(), now()) ON CONFLICT (id) DO NOTHING;
";

/// How long a transaction may wait on this client between statements
/// before the server ends the session (and releases its locks).
pub const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(2);

/// Two coordinators starting together create the tables one after the
/// other (an advisory lock held for the creating transaction).
const SCHEMA_LOCK: i64 = 0x6261_636b_6f75;

impl PostgresStore {
    /// Connects with `conninfo` (libpq's `key=value` form) and the password
    /// read from `password` (if any), creates the tables if needed and
    /// checks the journal's format.
    pub fn connect(conninfo: &str, password: Option<&str>) -> Result<PostgresStore, JournalError> {
        Self::connect_with(conninfo, password, None)
    }

    /// As [`PostgresStore::connect`]; with `ca_file`, over TLS only, the
    /// server's certificate checked against the CA certificates in that
    /// PEM file and the host the connection string names. `sslmode=require`
    /// in the connection string needs it.
    pub fn connect_with(
        conninfo: &str,
        password: Option<&str>,
        ca_file: Option<&std::path::Path>,
    ) -> Result<PostgresStore, JournalError> {
        let mut config: tokio_postgres::Config =
            conninfo.parse().map_err(|e| JournalError::Refused {
                at: "postgres".into(),
                message: format!("cannot read the connection string: {e}"),
            })?;
        if let Some(password) = password {
            config.password(password);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.application_name("backout");
        let tls = match ca_file {
            Some(path) => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                Some(
                    Rustls::from_ca_file(path).map_err(|e| JournalError::Refused {
                        at: "postgres".into(),
                        message: format!("{}: {e}", path.display()),
                    })?,
                )
            }
            None if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require => {
                return Err(JournalError::Refused {
                    at: "postgres".into(),
                    message: "sslmode=require needs `ca_file`: the CA certificate that signed the server's".into(),
                });
            }
            None => None,
        };
        // A leader paused in the middle of an append (SIGSTOP, a frozen VM)
        // holds the lease row's lock: the server ends its session after this
        // long idle in the transaction, so a standby can take the lease.
        let options = config.get_options().unwrap_or("").to_string();
        config.options(format!(
            "{options} -c idle_in_transaction_session_timeout={}",
            IDLE_IN_TRANSACTION.as_millis()
        ));
        let name = describe(&config);
        let store = PostgresStore {
            config,
            runtime: connection_runtime(&name)?,
            client: Mutex::new(None),
            tls,
            name,
            epoch: AtomicU64::new(0),
            leading: AtomicBool::new(true),
            released: AtomicBool::new(false),
        };
        store.with_client(async move |c: &mut Client| {
            c.batch_execute(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock({SCHEMA_LOCK}); {SCHEMA}
                 INSERT INTO meta (key, value) VALUES ('format', '{FORMAT}') ON CONFLICT (key) DO NOTHING;
                 COMMIT;"
            ))
            .await
        })?;
        let format = store.with_client(async move |c: &mut Client| {
            c.query_one("SELECT value FROM meta WHERE key = 'format'", &[])
                .await
                .map(|r| r.get::<_, String>(0))
        })?;
        if format != FORMAT.to_string() {
            return Err(JournalError::Refused {
                at: store.name(),
                message: format!(
                    "the journal says it is format {format}; this backout reads format {FORMAT}"
                ),
            });
        }
        Ok(store)
    }

    /// Runs `f` with the connected client (dialling again if the last one
    /// closed) and waits for it. Calls take turns, as SQLite's do.
    fn with_client<T>(
        &self,
        f: impl AsyncFnOnce(&mut Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, JournalError> {
        let mut slot = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let client = match slot.take().filter(|c| !c.is_closed()) {
            Some(client) => slot.insert(client),
            None => slot.insert(self.dial()?),
        };
        futures::executor::block_on(f(client)).map_err(|e| self.err(e))
    }

    /// A new connection, run on the store's own runtime.
    fn dial(&self) -> Result<Client, JournalError> {
        let config = self.config.clone();
        let tls = self.tls.clone();
        let name = self.name.clone();
        let dial = self.runtime.spawn(async move {
            let (client, mut messages) = open(&config, tls).await?;
            tokio::spawn(async move {
                while let Some(message) = futures::StreamExt::next(&mut messages).await {
                    if let Err(e) = message {
                        tracing::warn!(journal = %name, error = %e, "the journal's database connection ended");
                        return;
                    }
                }
            });
            Ok::<_, tokio_postgres::Error>(client)
        });
        futures::executor::block_on(dial)
            .map_err(|e| self.err(e))?
            .map_err(|e| self.err(e))
    }

    /// A store error saying the whole chain (tokio-postgres's own message is
    /// only "db error" or "error connecting to server").
    fn err(&self, e: impl std::error::Error + Send + Sync + 'static) -> JournalError {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        JournalError::Store {
            at: self.name(),
            source: text.into(),
        }
    }

    /// Takes the lease for `holder` if it is free or expired: the epoch goes
    /// up by one. Returns the new epoch and how the one before ended, or
    /// `None` while another holds it.
    pub fn take_lease(&self, holder: &str, ttl: Duration) -> Result<Option<Taken>, JournalError> {
        let holder = holder.to_string();
        let ttl_ms = ttl_ms(ttl);
        // `old` is the row as it was (locked, so the latest version): a
        // released row has no holder and expired when it was released; an
        // expired one still names its holder, last seen at its renewal.
        let taken = self.with_client(async move |c: &mut Client| {
            c.query_opt(
                "WITH old AS (SELECT holder, epoch, renewed_at, expires_at FROM lease
                              WHERE id = 1 FOR UPDATE)
                 UPDATE lease SET holder = $1, epoch = lease.epoch + 1, renewed_at = now(),
                     expires_at = now() + make_interval(secs => $2::BIGINT / 1000.0)
                 FROM old
                 WHERE lease.id = 1 AND lease.expires_at <= now()
                 RETURNING lease.epoch, old.epoch, old.holder = '',
                     (extract(epoch FROM now() - CASE WHEN old.holder = '' THEN old.expires_at
                                                      ELSE old.renewed_at END) * 1000)::BIGINT",
                &[&holder, &ttl_ms],
            )
            .await
            .map(|row| {
                row.map(|r| {
                    let (epoch, before, released) =
                        (r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, bool>(2));
                    Taken {
                        epoch: epoch as u64,
                        previous: match (before, released) {
                            (0, _) => lease_end::NONE,
                            (_, true) => lease_end::RELEASED,
                            (_, false) => lease_end::EXPIRED,
                        },
                        vacant_ms: if before == 0 { 0 } else { r.get(3) },
                    }
                })
            })
        })?;
        if let Some(t) = &taken {
            self.epoch.store(t.epoch, Ordering::SeqCst);
            self.leading.store(true, Ordering::SeqCst);
        }
        Ok(taken)
    }

    /// Moves the lease's expiry `ttl` past the database's now, if this
    /// store's epoch still holds it and it has not expired. `false`: lost.
    pub fn renew(&self, ttl: Duration) -> Result<bool, JournalError> {
        let epoch = self.epoch() as i64;
        let ttl_ms = ttl_ms(ttl);
        let n = self.with_client(async move |c: &mut Client| {
            c.execute(
                "UPDATE lease SET renewed_at = now(),
                     expires_at = now() + make_interval(secs => $2::BIGINT / 1000.0)
                 WHERE id = 1 AND epoch = $1 AND expires_at > now()",
                &[&epoch, &ttl_ms],
            )
            .await
        })?;
        Ok(n == 1)
    }

    /// Gives the lease up at once (a standby takes it without waiting for
    /// the TTL), if this store's epoch still holds it, and tells the
    /// standbys on [`LEASE_CHANNEL`] in the same statement (PostgreSQL
    /// delivers the notification when it commits). From here on this store
    /// writes and renews nothing: an append in flight either committed
    /// before the release (the row lock orders them) or is refused.
    pub fn release(&self) -> Result<(), JournalError> {
        self.released.store(true, Ordering::SeqCst);
        self.leading.store(false, Ordering::SeqCst);
        let epoch = self.epoch() as i64;
        self.with_client(async move |c: &mut Client| {
            c.execute(
                &format!(
                    "WITH released AS (
                         UPDATE lease SET holder = '', expires_at = now()
                         WHERE id = 1 AND epoch = $1 RETURNING epoch)
                     SELECT pg_notify('{LEASE_CHANNEL}', epoch::TEXT) FROM released"
                ),
                &[&epoch],
            )
            .await
        })
        .map(drop)
    }

    /// Whether [`PostgresStore::release`] was called.
    pub fn released(&self) -> bool {
        self.released.load(Ordering::SeqCst)
    }

    /// A connection of its own that `LISTEN`s on [`LEASE_CHANNEL`]: each
    /// release by a leader arrives on the receiver. The receiver ends when
    /// that connection does (the caller listens again, and meanwhile polls);
    /// dropping it closes the connection.
    pub async fn listen(&self) -> Result<tokio::sync::mpsc::UnboundedReceiver<()>, JournalError> {
        let config = self.config.clone();
        let tls = self.tls.clone();
        let name = self.name.clone();
        let listening = self.runtime.spawn(async move {
            let (client, mut messages) = open(&config, tls).await?;
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let (ended, ended_rx) = tokio::sync::oneshot::channel::<()>();
            let forward = tx.clone();
            // Polling the connection's messages is what drives it: each
            // notification is passed on; the loop ends with the connection.
            tokio::spawn(async move {
                let _ended = ended;
                while let Some(message) = futures::StreamExt::next(&mut messages).await {
                    match message {
                        Ok(AsyncMessage::Notification(_)) => {
                            if forward.send(()).is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(journal = %name, error = %e, "the lease channel's connection ended");
                            return;
                        }
                    }
                }
            });
            client
                .batch_execute(&format!("LISTEN {LEASE_CHANNEL}"))
                .await?;
            // The client lives as long as the connection is wanted: until
            // the receiver is dropped or the connection ends (then `tx`
            // goes too, and the receiver sees the end).
            tokio::spawn(async move {
                tokio::select! {
                    () = tx.closed() => {}
                    _ = ended_rx => {}
                }
                drop(client);
            });
            Ok::<_, tokio_postgres::Error>(rx)
        });
        listening
            .await
            .map_err(|e| self.err(e))?
            .map_err(|e| self.err(e))
    }

    /// Says that the coordinator advertised as `advertise` is alive (every
    /// lease attempt of a standby, every renewal of the leader).
    pub fn seen(&self, advertise: &str) -> Result<(), JournalError> {
        let advertise = advertise.to_string();
        self.with_client(async move |c: &mut Client| {
            c.execute(
                "INSERT INTO coordinators (advertise, seen_at) VALUES ($1, now())
                 ON CONFLICT (advertise) DO UPDATE SET seen_at = now()",
                &[&advertise],
            )
            .await
        })
        .map(drop)
    }

    /// Coordinators seen within `within` that do not hold the lease.
    pub fn standbys(&self, within: Duration) -> Result<Vec<String>, JournalError> {
        let within_ms = ttl_ms(within);
        self.with_client(async move |c: &mut Client| {
            let rows = c
                .query(
                    "SELECT advertise FROM coordinators
                     WHERE seen_at > now() - make_interval(secs => $1::BIGINT / 1000.0)
                       AND advertise <> (SELECT holder FROM lease WHERE id = 1)
                     ORDER BY advertise",
                    &[&within_ms],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    /// The lease row as it stands.
    pub fn lease(&self) -> Result<LeaseRow, JournalError> {
        self.with_client(async move |c: &mut Client| {
            c.query_one(
                "SELECT holder, epoch, expires_at > now(),
                     (extract(epoch FROM now() - renewed_at) * 1000)::BIGINT FROM lease WHERE id = 1",
                &[],
            )
            .await
            .map(|r| LeaseRow {
                holder: r.get(0),
                epoch: r.get::<_, i64>(1) as u64,
                live: r.get(2),
                age_ms: r.get(3),
            })
        })
    }

    /// Stops (false) or resumes (true) writing: set by the lease's keeper
    /// when a renewal fails or succeeds.
    /// Once released, it stays stopped.
    pub fn set_leading(&self, leading: bool) {
        self.leading
            .store(leading && !self.released(), Ordering::SeqCst);
    }

    pub fn leading(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    fn read_rows(&self, from_seq: i64, run_id: Option<&str>) -> Result<Vec<Row>, JournalError> {
        let run_id = run_id.map(str::to_string);
        self.with_client(async move |c: &mut Client| {
            let rows = c
                .query(
                    "SELECT seq, at_ms, run_id, kind, body, prev_hash, hash FROM entries
                     WHERE seq >= $1 AND ($2::TEXT IS NULL OR run_id = $2) ORDER BY seq",
                    &[&from_seq, &run_id],
                )
                .await?;
            Ok(rows.iter().map(row_of).collect())
        })
    }
}

impl JournalStore for PostgresStore {
    fn append(&self, new: &[NewEntry<'_>]) -> Result<Vec<Written>, JournalError> {
        let mine = self.epoch();
        if !self.leading() {
            return Err(JournalError::Fenced {
                at: self.name(),
                mine,
                current: None,
            });
        }
        let encoded = encode_entries(&self.name(), new)?;
        let released = &self.released;
        let outcome = self.with_client(async move |client: &mut Client| {
            // Released while this append waited for the connection: the
            // lease row may still carry this epoch, and still nothing is
            // written.
            if released.load(Ordering::SeqCst) {
                return Ok(Err(None));
            }
            let tx = client.transaction().await?;
            // The fence: the lease row, locked until this transaction ends,
            // must still carry this store's epoch.
            let current: i64 = tx
                .query_one("SELECT epoch FROM lease WHERE id = 1 FOR UPDATE", &[])
                .await?
                .get(0);
            if current as u64 != mine {
                return Ok(Err(Some(current as u64)));
            }
            let head = tx
                .query_opt("SELECT seq, hash FROM head WHERE id = 1", &[])
                .await?
                .map_or_else(Head::empty, |r| Head {
                    seq: r.get(0),
                    hash: r.get(1),
                });
            let rows = chain::link(&head, encoded);
            // One round trip for the whole batch.
            let column = |f: fn(&Row) -> String| rows.iter().map(f).collect::<Vec<String>>();
            let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
            let ats: Vec<i64> = rows.iter().map(|r| r.at_ms).collect();
            tx.execute(
                "INSERT INTO entries (seq, at_ms, run_id, kind, body, prev_hash, hash)
                 SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[],
                     $5::TEXT[], $6::TEXT[], $7::TEXT[])",
                &[
                    &seqs,
                    &ats,
                    &column(|r| r.run_id.clone()),
                    &column(|r| r.kind.clone()),
                    &column(|r| r.body.clone()),
                    &column(|r| r.prev_hash.clone()),
                    &column(|r| r.hash.clone()),
                ],
            )
            .await?;
            if let Some(last) = rows.last() {
                tx.execute(
                    "INSERT INTO head (id, seq, hash) VALUES (1, $1, $2)
                     ON CONFLICT (id) DO UPDATE SET seq = $1, hash = $2",
                    &[&last.seq, &last.hash],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(Ok(rows))
        })?;
        match outcome {
            Ok(rows) => Ok(rows
                .into_iter()
                .map(|r| Written {
                    seq: r.seq,
                    hash: r.hash,
                })
                .collect()),
            Err(current) => {
                self.leading.store(false, Ordering::SeqCst);
                Err(JournalError::Fenced {
                    at: self.name(),
                    mine,
                    current,
                })
            }
        }
    }

    fn read_from(&self, from_seq: i64, run_id: Option<&str>) -> Result<Vec<Entry>, JournalError> {
        decode_rows(&self.name(), self.read_rows(from_seq, run_id)?)
    }

    fn head(&self) -> Result<Head, JournalError> {
        self.with_client(async move |c: &mut Client| {
            c.query_opt("SELECT seq, hash FROM head WHERE id = 1", &[])
                .await
                .map(|r| {
                    r.map_or_else(Head::empty, |r| Head {
                        seq: r.get(0),
                        hash: r.get(1),
                    })
                })
        })
    }

    fn snapshot(&self) -> Result<Snapshot, JournalError> {
        // Rows and head from one snapshot (REPEATABLE READ): an append in
        // between cannot look like a cut tail.
        self.with_client(async |client: &mut Client| {
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let rows = tx
                .query(
                    "SELECT seq, at_ms, run_id, kind, body, prev_hash, hash FROM entries ORDER BY seq",
                    &[],
                )
                .await?;
            let head = tx
                .query_opt("SELECT seq, hash FROM head WHERE id = 1", &[])
                .await?
                .map(|r| Head {
                    seq: r.get(0),
                    hash: r.get(1),
                });
            tx.commit().await?;
            let rows: Vec<Row> = rows.iter().map(row_of).collect();
            Ok(Snapshot {
                base: Head::empty(),
                rows,
                head,
            })
        })
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }
}

/// What a connection says by itself (notices, notifications), until it
/// ends; polling it is what drives the connection.
type Messages = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<AsyncMessage, tokio_postgres::Error>> + Send>,
>;

/// A new connection: over TLS with `tls`, else in plain text.
async fn open(
    config: &tokio_postgres::Config,
    tls: Option<Rustls>,
) -> Result<(Client, Messages), tokio_postgres::Error> {
    Ok(match tls {
        Some(tls) => {
            let (client, mut connection) = config.connect(tls).await?;
            let messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            (client, Box::pin(messages) as Messages)
        }
        None => {
            let (client, mut connection) = config.connect(NoTls).await?;
            let messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            (client, Box::pin(messages) as Messages)
        }
    })
}

fn row_of(r: &tokio_postgres::Row) -> Row {
    Row {
        seq: r.get(0),
        at_ms: r.get(1),
        run_id: r.get(2),
        kind: r.get(3),
        body: r.get(4),
        prev_hash: r.get(5),
        hash: r.get(6),
    }
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

/// `postgres host=… port=… dbname=… user=…`: what the store is called in
/// messages, without the password.
fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    let mut ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    if ports.is_empty() {
        ports.push("5432".into());
    }
    format!(
        "postgres host={} port={} dbname={} user={}",
        hosts.join(","),
        ports.join(","),
        config.get_dbname().unwrap_or(""),
        config.get_user().unwrap_or("")
    )
}

/// A runtime of one thread for the journal's database connections: the
/// store is called from any thread (the coordinator's runtime's workers
/// included) and waits on channels to this one.
fn connection_runtime(name: &str) -> Result<tokio::runtime::Handle, JournalError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| JournalError::Store {
            at: name.to_string(),
            source: Box::new(e),
        })?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name("journal-postgres".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))
        .map_err(|e| JournalError::Store {
            at: name.to_string(),
            source: Box::new(e),
        })?;
    Ok(handle)
}
