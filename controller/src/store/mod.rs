//! Durable controller state in SQLite: requests, batches, node outcomes, images, and an
//! append-only journal of every operator command and every state transition.
//!
//! Why SQLite and why like this:
//! - Terragraph keeps all upgrade state in memory (reference §2.1): a controller restart in the
//!   middle of a commit forgets which nodes were sent a reboot. meshlift writes the engine's state
//!   before the shell sends the resulting messages, so a restarted controller knows which nodes
//!   were already committed and judges them from their reports instead of committing them again.
//! - The engine hands its writes over as a list of [`StoreOp`]s per input, applied in **one
//!   transaction** ([`Store::apply`]): an input's effects are either all on disk or none are, and
//!   batching is what makes the journal fast (one fsync per input, not per row).
//! - WAL mode: readers (an operator's `sqlite3` on the file) never block the controller.
//! - The schema is versioned with `PRAGMA user_version`; [`MIGRATIONS`] are applied in order at
//!   open, each in its own transaction, so an old database is upgraded in place and a database
//!   from a newer controller is refused rather than misread.
//! - The journal is append-only: a trigger refuses UPDATE on it, and DELETE unless the retention
//!   policy's [`StoreOp::PruneJournal`] opened the gate (`journal_prune`) inside its own
//!   transaction — a stray `DELETE` from an operator's `sqlite3` is still refused.
//!
//! Rows hold the engine's records as JSON (`body` columns) next to the few columns that are
//! queried; the records are the engine's own types, so the schema does not have to chase every
//! field added to them.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::{de::DeserializeOwned, Serialize};
use std::path::Path;

use meshlift_protocol::{ConfigDoc, NodeOutcome, Operator, OutcomeKind, UpgradeImage, UpgradeReqType};

mod snapshot;
pub use snapshot::{RunningRows, Snapshot};

/// Schema migrations; entry `i` takes the database from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // v1: the tables.
    "CREATE TABLE requests (
        id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL UNIQUE,
        state TEXT NOT NULL,
        submitted_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        body TEXT NOT NULL
    );
    CREATE TABLE batches (
        request_id TEXT NOT NULL,
        stage TEXT NOT NULL,
        idx INTEGER NOT NULL,
        open INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (request_id, stage, idx)
    );
    CREATE TABLE request_nodes (
        request_id TEXT NOT NULL,
        node TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (request_id, node)
    );
    CREATE TABLE batch_nodes (
        request_id TEXT NOT NULL,
        stage TEXT NOT NULL,
        idx INTEGER NOT NULL,
        node TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (request_id, stage, idx, node)
    );
    CREATE TABLE node_outcomes (
        request_id TEXT NOT NULL,
        stage TEXT NOT NULL,
        node TEXT NOT NULL,
        outcome TEXT NOT NULL,
        reason TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        PRIMARY KEY (request_id, stage, node)
    );
    CREATE TABLE images (
        name TEXT PRIMARY KEY,
        added_at INTEGER NOT NULL,
        body TEXT NOT NULL
    );
    CREATE TABLE journal (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        request_id TEXT,
        node TEXT,
        who TEXT,
        reason TEXT,
        message TEXT NOT NULL
    );",
    // v2: the journal is append-only, enforced by the database itself.
    "CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
        BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END;
     CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
        BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END;
     CREATE INDEX journal_request ON journal(request_id);",
    // v3: the golden-image loop's state (settings, targets, rollouts and their waves, blacklist,
    // quarantines): one row, the reconciler's own serde value, written after every input that
    // changed it, so a restart resumes a wave in flight instead of starting it again.
    "CREATE TABLE golden (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        updated_at INTEGER NOT NULL,
        body TEXT NOT NULL
    );",
    // v4: journal retention. Lines are deleted only by `StoreOp::PruneJournal`, which opens this
    // gate, deletes the oldest lines and closes it again in one transaction; any other DELETE is
    // refused as before.
    "CREATE TABLE journal_prune (id INTEGER PRIMARY KEY CHECK (id = 1), open INTEGER NOT NULL);
     INSERT INTO journal_prune (id, open) VALUES (1, 0);
     DROP TRIGGER journal_no_delete;
     CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
        WHEN (SELECT open FROM journal_prune WHERE id = 1) IS NOT 1
        BEGIN SELECT RAISE(ABORT, 'journal is append-only (only the retention policy prunes it)'); END;",
    // v5: image tags (`image add --tag`, `image tag`), one row per (image, tag), so a filter by
    // tag is one indexed lookup and a tag change never rewrites the image record.
    "CREATE TABLE image_tags (
        name TEXT NOT NULL,
        tag TEXT NOT NULL,
        PRIMARY KEY (name, tag)
    );
    CREATE INDEX image_tags_tag ON image_tags(tag);",
    // v6: snapshots of what runs where (`meshlift snapshot create`): the record as JSON.
    "CREATE TABLE snapshots (
        name TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL,
        body TEXT NOT NULL
    );",
    // v7: startup configuration documents (per node, board or fleet), every version kept; the
    // current one of a scope is its highest version (a cleared scope's is a row with cleared = 1).
    "CREATE TABLE startup_configs (
        version INTEGER PRIMARY KEY,
        scope TEXT NOT NULL,
        cleared INTEGER NOT NULL,
        at INTEGER NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX startup_configs_scope ON startup_configs(scope, version);",
];

/// How long a write waits for another writer's lock before it fails (see [`Store::open`]).
pub const BUSY_TIMEOUT_MS: u64 = 250;

/// Why the store failed. Every variant is a disk or database problem, never the operator's.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused: disk full, file locked by another controller, corrupt file.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A row's JSON body does not parse: written by an incompatible build, or edited by hand.
    #[error("row {what} does not parse: {error}")]
    Corrupt { what: String, error: String },
    /// The file was written by a newer controller whose schema we do not know.
    #[error("database schema version {found} is newer than this controller's {known}; refusing to open")]
    TooNew { found: u32, known: u32 },
}

/// What a journal line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalKind {
    /// An operator command, with who and why.
    Command,
    /// A state transition of a request, batch or node.
    Transition,
}

impl JournalKind {
    fn as_str(self) -> &'static str {
        match self {
            JournalKind::Command => "command",
            JournalKind::Transition => "transition",
        }
    }
    fn parse(s: &str) -> JournalKind {
        if s == "command" {
            JournalKind::Command
        } else {
            JournalKind::Transition
        }
    }
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// Assigned by the database; 0 before insertion.
    pub seq: i64,
    pub at: u64,
    pub kind: JournalKind,
    pub request_id: Option<String>,
    pub node: Option<String>,
    pub operator: Option<Operator>,
    pub message: String,
}

/// One write. The engine collects these per input and applies them together.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreOp {
    /// Insert or replace a request record (`body` is the engine's JSON).
    PutRequest {
        id: String,
        seq: u64,
        state: String,
        submitted_at: u64,
        at: u64,
        body: String,
    },
    /// Insert or replace a batch record.
    PutBatch {
        request_id: String,
        stage: String,
        index: u32,
        open: bool,
        started_at: u64,
        body: String,
    },
    /// Per-node state of a request (retries, commit sent, baseline): one small row per node, so a
    /// change to one node of a 10 000-node request rewrites one row, not the request.
    PutRequestNode {
        request_id: String,
        node: String,
        body: String,
    },
    /// One node of a batch (its progress).
    PutBatchNode {
        request_id: String,
        stage: String,
        index: u32,
        node: String,
        body: String,
    },
    /// Record a node's final outcome for one request stage.
    PutOutcome(NodeOutcome),
    PutImage {
        image: UpgradeImage,
        at: u64,
    },
    DeleteImage {
        name: String,
    },
    Journal(JournalEntry),
    /// Replace the tags of an image.
    PutImageTags {
        name: String,
        tags: Vec<String>,
    },
    /// Insert a snapshot (`body`: JSON of `meshlift_protocol::fleet::Snapshot`).
    PutSnapshot {
        name: String,
        at: u64,
        body: String,
    },
    DeleteSnapshot {
        name: String,
    },
    /// The golden-image loop's whole state (JSON of `golden::GoldenState`).
    PutGolden {
        at: u64,
        body: String,
    },
    /// The journal's retention policy: delete the lines older than `before` (UNIX ms) and all but
    /// the newest `keep_rows` lines.
    PruneJournal {
        before: u64,
        keep_rows: u64,
    },
    /// A new version of a scope's startup configuration (`cleared`: the scope has none from now).
    PutStartupConfig {
        doc: ConfigDoc,
        cleared: bool,
    },
}

/// A stored request row.
#[derive(Debug, Clone)]
pub struct RequestRow {
    pub id: String,
    pub seq: u64,
    pub state: String,
    pub body: String,
}

/// A stored batch row.
#[derive(Debug, Clone)]
pub struct BatchRow {
    pub request_id: String,
    pub stage: String,
    pub index: u32,
    pub open: bool,
    pub body: String,
}

/// The SQLite store. Not `Sync`: the engine owns it and writes from one thread.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Open (or create) the database file, switch to WAL, and migrate the schema.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::init(Connection::open(path)?)
    }

    /// SQLite's `synchronous` setting in force (2 = FULL): what [`Store::open`] promises about
    /// power cuts, checkable.
    pub fn synchronous(&self) -> Result<u32, StoreError> {
        Ok(self.conn.pragma_query_value(None, "synchronous", |r| r.get::<_, u32>(0))?)
    }

    /// A private in-memory database (tests, dry runs, benches).
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Store::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store, StoreError> {
        // WAL keeps readers off the writer's back. `synchronous = FULL`: every commit is fsynced
        // before it returns, so a power cut cannot roll back the record that a COMMIT was sent
        // (NORMAL in WAL mode can lose the last transactions on power loss). The cost is one
        // fsync per input that changes state; the journal bench measures it.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Short: the store is written from the controller's event loop, which must keep acking
        // status reports. In WAL mode only another writer (a second process on the file, an
        // operator's open write transaction) holds the lock; waiting for it longer than this
        // stalls the loop, and a write that gives up is held and retried by the shell's outbox
        // (`crate::outbox`) with the controller degraded, never lost or acted upon.
        conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
        let mut store = Store { conn };
        store.migrate()?;
        Ok(store)
    }

    /// Schema version of the open database.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(self.conn.pragma_query_value(None, "user_version", |r| r.get::<_, u32>(0))?)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let known = MIGRATIONS.len() as u32;
        let found = self.schema_version()?;
        if found > known {
            return Err(StoreError::TooNew { found, known });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as u32)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Apply all ops in one transaction: all or nothing.
    pub fn apply(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut txn = self.begin()?;
        for op in ops {
            txn.write(op)?;
        }
        txn.commit()
    }

    /// Start a transaction explicitly. Dropping the returned [`StoreTxn`] without
    /// [`StoreTxn::commit`] rolls everything back, which is what a crash mid-write amounts to.
    pub fn begin(&mut self) -> Result<StoreTxn<'_>, StoreError> {
        Ok(StoreTxn { tx: self.conn.transaction()? })
    }

    /// Every request, in submission order.
    pub fn requests(&self) -> Result<Vec<RequestRow>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT id, seq, state, body FROM requests ORDER BY seq")?;
        let rows = stmt.query_map([], |r| {
            Ok(RequestRow {
                id: r.get(0)?,
                seq: r.get::<_, i64>(1)? as u64,
                state: r.get(2)?,
                body: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Batches of one request, in stage and index order.
    pub fn batches(&self, request_id: &str) -> Result<Vec<BatchRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT request_id, stage, idx, open, body FROM batches WHERE request_id = ?1
             ORDER BY CASE stage WHEN 'prepare' THEN 0 ELSE 1 END, idx",
        )?;
        let rows = stmt.query_map([request_id], |r| {
            Ok(BatchRow {
                request_id: r.get(0)?,
                stage: r.get(1)?,
                index: r.get(2)?,
                open: r.get::<_, i64>(3)? != 0,
                body: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Per-node rows of one request: (node, body).
    pub fn request_nodes(&self, request_id: &str) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt =
            self.conn.prepare("SELECT node, body FROM request_nodes WHERE request_id = ?1 ORDER BY node")?;
        let rows = stmt.query_map([request_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Node rows of one batch: (node, body).
    pub fn batch_nodes(
        &self,
        request_id: &str,
        stage: &str,
        index: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT node, body FROM batch_nodes WHERE request_id = ?1 AND stage = ?2 AND idx = ?3 ORDER BY node",
        )?;
        let rows = stmt.query_map(params![request_id, stage, index], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Outcomes of one request.
    pub fn outcomes(&self, request_id: &str) -> Result<Vec<NodeOutcome>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT request_id, stage, node, outcome, reason, started_at, finished_at
             FROM node_outcomes WHERE request_id = ?1 ORDER BY finished_at, node",
        )?;
        let rows = stmt.query_map([request_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (request_id, stage, node, outcome, reason, started_at, finished_at) = row?;
            let outcome = OutcomeKind::parse(&outcome).ok_or_else(|| StoreError::Corrupt {
                what: format!("node_outcomes({request_id}, {node})"),
                error: format!("unknown outcome {outcome:?}"),
            })?;
            out.push(NodeOutcome {
                request_id,
                stage: parse_stage(&stage),
                node,
                outcome,
                reason,
                started_at: started_at as u64,
                finished_at: finished_at as u64,
            });
        }
        Ok(out)
    }

    /// Every stored image, by name.
    pub fn images(&self) -> Result<Vec<UpgradeImage>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT name, body FROM images ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (name, body) = row?;
            out.push(from_json(&format!("images({name})"), &body)?);
        }
        Ok(out)
    }

    /// Journal lines with `seq > after`, oldest first, at most `limit`.
    pub fn journal(&self, after: i64, limit: u32) -> Result<Vec<JournalEntry>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, at, kind, request_id, node, who, reason, message FROM journal
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, limit], |r| {
            let who: Option<String> = r.get(5)?;
            let reason: Option<String> = r.get(6)?;
            Ok(JournalEntry {
                seq: r.get(0)?,
                at: r.get::<_, i64>(1)? as u64,
                kind: JournalKind::parse(&r.get::<_, String>(2)?),
                request_id: r.get(3)?,
                node: r.get(4)?,
                operator: who.map(|who| Operator { who, reason }),
                message: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Tags of every image: name → tags.
    pub fn image_tags(
        &self,
    ) -> Result<std::collections::BTreeMap<String, std::collections::BTreeSet<String>>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT name, tag FROM image_tags ORDER BY name, tag")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
            Default::default();
        for row in rows {
            let (name, tag) = row?;
            out.entry(name).or_default().insert(tag);
        }
        Ok(out)
    }

    /// Every snapshot (JSON bodies), oldest first.
    pub fn snapshots(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT name, body FROM snapshots ORDER BY created_at, name")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The golden-image loop's state as last written (JSON), if any.
    pub fn golden(&self) -> Result<Option<String>, StoreError> {
        Ok(self.conn.query_row("SELECT body FROM golden WHERE id = 1", [], |r| r.get(0)).optional()?)
    }

    /// The current startup configuration of every scope that has one (cleared scopes left out),
    /// and the highest version ever written (versions are never reused).
    pub fn startup_configs(&self) -> Result<(Vec<ConfigDoc>, u64), StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT c.version, c.cleared, c.body FROM startup_configs c
             WHERE c.version = (SELECT MAX(version) FROM startup_configs d WHERE d.scope = c.scope)",
        )?;
        let rows =
            stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?, r.get::<_, String>(2)?)))?;
        let mut docs = Vec::new();
        for row in rows {
            let (version, cleared, body) = row?;
            if !cleared {
                docs.push(from_json::<ConfigDoc>(&format!("startup_configs({version})"), &body)?);
            }
        }
        let max: Option<i64> =
            self.conn.query_row("SELECT MAX(version) FROM startup_configs", [], |r| r.get(0))?;
        Ok((docs, max.unwrap_or(0) as u64))
    }

    /// Number of journal lines.
    pub fn journal_len(&self) -> Result<u64, StoreError> {
        Ok(self.conn.query_row("SELECT COUNT(*) FROM journal", [], |r| r.get::<_, i64>(0))? as u64)
    }

    /// Whether a request id was ever used.
    pub fn has_request(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM requests WHERE id = ?1", [id], |_| Ok(()))
            .optional()?
            .is_some())
    }
}

/// An open transaction on the store; see [`Store::begin`].
pub struct StoreTxn<'a> {
    tx: Transaction<'a>,
}

impl StoreTxn<'_> {
    /// Write one op inside the transaction.
    pub fn write(&mut self, op: &StoreOp) -> Result<(), StoreError> {
        let tx = &self.tx;
        match op {
            StoreOp::PutRequest { id, seq, state, submitted_at, at, body } => {
                tx.prepare_cached(
                    "INSERT INTO requests (id, seq, state, submitted_at, updated_at, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT(id) DO UPDATE SET state = ?3, updated_at = ?5, body = ?6",
                )?
                .execute(params![
                    id,
                    *seq as i64,
                    state,
                    *submitted_at as i64,
                    *at as i64,
                    body
                ])?;
            }
            StoreOp::PutBatch { request_id, stage, index, open, started_at, body } => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO batches (request_id, stage, idx, open, started_at, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    request_id,
                    stage,
                    index,
                    *open as i64,
                    *started_at as i64,
                    body
                ])?;
            }
            StoreOp::PutRequestNode { request_id, node, body } => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO request_nodes (request_id, node, body) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![request_id, node, body])?;
            }
            StoreOp::PutBatchNode { request_id, stage, index, node, body } => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO batch_nodes (request_id, stage, idx, node, body)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![request_id, stage, index, node, body])?;
            }
            StoreOp::PutOutcome(o) => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO node_outcomes
                     (request_id, stage, node, outcome, reason, started_at, finished_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    o.request_id,
                    stage_str(o.stage),
                    o.node,
                    o.outcome.as_str(),
                    o.reason,
                    o.started_at as i64,
                    o.finished_at as i64
                ])?;
            }
            StoreOp::PutImage { image, at } => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO images (name, added_at, body) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![image.name, *at as i64, to_json(image)])?;
            }
            StoreOp::DeleteImage { name } => {
                tx.prepare_cached("DELETE FROM images WHERE name = ?1")?.execute([name])?;
                // An image added again later starts without the old one's tags.
                tx.prepare_cached("DELETE FROM image_tags WHERE name = ?1")?.execute([name])?;
            }
            StoreOp::PutImageTags { name, tags } => {
                tx.prepare_cached("DELETE FROM image_tags WHERE name = ?1")?.execute([name])?;
                let mut ins = tx.prepare_cached("INSERT INTO image_tags (name, tag) VALUES (?1, ?2)")?;
                for t in tags {
                    ins.execute(params![name, t])?;
                }
            }
            StoreOp::PutSnapshot { name, at, body } => {
                tx.prepare_cached("INSERT INTO snapshots (name, created_at, body) VALUES (?1, ?2, ?3)")?
                    .execute(params![name, *at as i64, body])?;
            }
            StoreOp::DeleteSnapshot { name } => {
                tx.prepare_cached("DELETE FROM snapshots WHERE name = ?1")?.execute([name])?;
            }
            StoreOp::PutStartupConfig { doc, cleared } => {
                tx.prepare_cached(
                    "INSERT INTO startup_configs (version, scope, cleared, at, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![doc.version as i64, doc.scope.label(), *cleared, doc.at as i64, to_json(doc)])?;
            }
            StoreOp::PutGolden { at, body } => {
                tx.prepare_cached(
                    "INSERT INTO golden (id, updated_at, body) VALUES (1, ?1, ?2)
                     ON CONFLICT(id) DO UPDATE SET updated_at = ?1, body = ?2",
                )?
                .execute(params![*at as i64, body])?;
            }
            StoreOp::PruneJournal { before, keep_rows } => {
                tx.execute("UPDATE journal_prune SET open = 1 WHERE id = 1", [])?;
                tx.prepare_cached("DELETE FROM journal WHERE at < ?1")?.execute([*before as i64])?;
                tx.prepare_cached(
                    "DELETE FROM journal WHERE seq <= (SELECT seq FROM journal ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
                )?
                .execute([i64::try_from(*keep_rows).unwrap_or(i64::MAX)])?;
                tx.execute("UPDATE journal_prune SET open = 0 WHERE id = 1", [])?;
            }
            StoreOp::Journal(e) => {
                tx.prepare_cached(
                    "INSERT INTO journal (at, kind, request_id, node, who, reason, message)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    e.at as i64,
                    e.kind.as_str(),
                    e.request_id,
                    e.node,
                    e.operator.as_ref().map(|o| o.who.as_str()),
                    e.operator.as_ref().and_then(|o| o.reason.as_deref()),
                    e.message
                ])?;
            }
        }
        Ok(())
    }

    /// Make every write of this transaction durable.
    pub fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit()?)
    }
}

/// Stage name in the database.
pub fn stage_str(stage: UpgradeReqType) -> &'static str {
    match stage {
        UpgradeReqType::PrepareUpgrade => "prepare",
        UpgradeReqType::CommitUpgrade => "commit",
        UpgradeReqType::ResetStatus => "reset",
        UpgradeReqType::FullUpgrade => "full",
        UpgradeReqType::RevertToStandby => "revert",
    }
}

fn parse_stage(s: &str) -> UpgradeReqType {
    match s {
        "prepare" => UpgradeReqType::PrepareUpgrade,
        "reset" => UpgradeReqType::ResetStatus,
        "full" => UpgradeReqType::FullUpgrade,
        "revert" => UpgradeReqType::RevertToStandby,
        _ => UpgradeReqType::CommitUpgrade,
    }
}

/// Serialize an engine record for a `body` column.
pub fn to_json<T: Serialize>(value: &T) -> String {
    // Engine records are plain structs of strings, numbers, maps and vectors with string keys:
    // serde_json cannot fail on them.
    serde_json::to_string(value).expect("engine records serialize to JSON")
}

/// Parse a `body` column, naming the row on failure.
pub fn from_json<T: DeserializeOwned>(what: &str, body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body)
        .map_err(|e| StoreError::Corrupt { what: what.to_string(), error: e.to_string() })
}
