//! The store as one value: every table's raw keys and values, taken in one read transaction
//! ([`Store::export_image`]) and put back in one write transaction ([`Store::install_image`]).
//! This is what a Raft snapshot of the state machine carries: a follower that fell behind the
//! leader's compacted log replaces its whole store with the leader's image.
//!
//! Rows are redb's own byte forms of the typed keys and values, so an image is exactly the
//! store, whatever the records hold. An image comes from another server, so every row is checked
//! against its table's type before it is written (redb's decoders panic on malformed bytes), and
//! an image of another schema version is refused. This module never interprets a record.

use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use serde::{Deserialize, Serialize};

use super::tables::*;
use super::{Result, SCHEMA_VERSION, Store, StoreError, db_error};

/// Every table of a store, by name, with its rows in key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreImage {
    /// The schema version of the store it was taken from: an image is installed only into a
    /// store of the same version.
    pub schema_version: u64,
    pub tables: Vec<TableImage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableImage {
    pub name: String,
    pub rows: Vec<Row>,
}

/// One record: redb's byte forms of its key and value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

/// Calls `$each!(definition, key_is_text, value_is_text)` for every table of the store; one
/// list, so that export and install cannot disagree on what a store holds. A table added to
/// `tables.rs` belongs here too.
macro_rules! every_table {
    ($each:ident) => {
        $each!(META, true, false);
        $each!(JOBS, false, false);
        $each!(JOB_NAMES, true, false);
        $each!(DUE, false, false);
        $each!(INSTANCES, false, false);
        $each!(JOB_INSTANCES, false, false);
        $each!(ACTIVE, false, false);
        $each!(ACTIVE_COUNTS, false, false);
        $each!(RAFT_APPLIED, true, false);
        $each!(CHANNELS, true, false);
        $each!(JOB_HEALTH, false, false);
        $each!(ALERTS, false, false);
        $each!(ALERTS_DUE, false, false);
    };
}

impl Store {
    /// A consistent image of every table (one read transaction).
    pub fn export_image(&self) -> Result<StoreImage> {
        let txn = self
            .database(super::WriteOutcome::ReadRefused)?
            .begin_read()
            .map_err(db_error)?;
        let mut tables = Vec::new();
        macro_rules! export {
            ($def:expr, $key_text:expr, $value_text:expr) => {
                tables.push(export_table(&txn, $def)?);
            };
        }
        every_table!(export);
        Ok(StoreImage {
            schema_version: SCHEMA_VERSION,
            tables,
        })
    }

    /// Replaces every table with `image`'s, in one durable write transaction: afterwards the
    /// store holds exactly the image, or (on an error) is unchanged. A table the image lacks is
    /// left empty; a table of the image this build does not know is refused.
    pub fn install_image(&self, image: &StoreImage) -> Result<()> {
        if image.schema_version != SCHEMA_VERSION {
            return Err(StoreError::Corrupt {
                table: "snapshot",
                reason: format!(
                    "the snapshot has schema version {}, this server {SCHEMA_VERSION}: run the \
                     same shoal version on every server of the group",
                    image.schema_version
                ),
            });
        }
        let mut known = Vec::new();
        macro_rules! name {
            ($def:expr, $key_text:expr, $value_text:expr) => {
                known.push($def.name());
            };
        }
        every_table!(name);
        if let Some(unknown) = image
            .tables
            .iter()
            .find(|table| !known.contains(&table.name.as_str()))
        {
            return Err(StoreError::Corrupt {
                table: "snapshot",
                reason: format!("unknown table {:?} in the snapshot", unknown.name),
            });
        }
        self.write(|tx| {
            let txn = &tx.txn;
            macro_rules! install {
                ($def:expr, $key_text:expr, $value_text:expr) => {
                    let rows = image
                        .tables
                        .iter()
                        .find(|table| table.name == $def.name())
                        .map_or(&[][..], |table| table.rows.as_slice());
                    install_table(txn, $def, rows, $key_text, $value_text)?;
                };
            }
            every_table!(install);
            Ok::<_, StoreError>(())
        })
    }
}

fn export_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<TableImage> {
    let table = txn.open_table(def).map_err(db_error)?;
    let mut rows = Vec::new();
    for entry in table.iter().map_err(db_error)? {
        let (key, value) = entry.map_err(db_error)?;
        rows.push(Row {
            key: K::as_bytes(&key.value()).as_ref().to_vec(),
            value: V::as_bytes(&value.value()).as_ref().to_vec(),
        });
    }
    Ok(TableImage {
        name: def.name().to_string(),
        rows,
    })
}

fn install_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::WriteTransaction,
    def: TableDefinition<K, V>,
    rows: &[Row],
    key_is_text: bool,
    value_is_text: bool,
) -> Result<()> {
    let mut table = txn.open_table(def).map_err(db_error)?;
    table.retain(|_, _| false).map_err(db_error)?;
    for (n, row) in rows.iter().enumerate() {
        let malformed = |what: &str| StoreError::Corrupt {
            table: "snapshot",
            reason: format!("row {n} of table {}: malformed {what}", def.name()),
        };
        if !well_formed::<K>(&row.key, key_is_text) {
            return Err(malformed("key"));
        }
        if !well_formed::<V>(&row.value, value_is_text) {
            return Err(malformed("value"));
        }
        table
            .insert(K::from_bytes(&row.key), V::from_bytes(&row.value))
            .map_err(db_error)?;
    }
    Ok(())
}

/// Whether redb can decode `bytes` as a `T` without panicking: fixed-width types need exactly
/// their width, text must be UTF-8. (Our variable-width types are text and raw bytes.)
fn well_formed<T: redb::Value>(bytes: &[u8], is_text: bool) -> bool {
    match T::fixed_width() {
        Some(width) => bytes.len() == width,
        None => !is_text || std::str::from_utf8(bytes).is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::engine::{Engine, LocalEngine};
    use crate::test_support;
    use std::sync::Arc;

    fn export(store: &Store) -> Vec<(&'static str, super::super::TableExport)> {
        store.read().unwrap().export().unwrap()
    }

    #[test]
    fn an_installed_image_makes_a_fresh_store_identical_table_by_table() {
        use crate::server::command::Command;
        let source_dir = tempfile::tempdir().unwrap();
        let source = LocalEngine::new(Arc::new(Store::open(source_dir.path()).unwrap()));
        for n in 0..3 {
            let def = test_support::on_demand(&format!("job-{n}"));
            source
                .propose(Command::CreateJob { def, at: 1_000 })
                .unwrap();
            source
                .propose(Command::RunNow {
                    job: format!("job-{n}"),
                    at: 2_000 + n,
                })
                .unwrap();
        }
        source
            .store()
            .write(|tx| tx.put_raft_applied("last_applied", b"opaque"))
            .unwrap();
        let image = source.store().export_image().unwrap();
        assert!(
            image
                .tables
                .iter()
                .any(|t| t.name == "instances" && t.rows.len() == 3),
            "the image holds the instances"
        );

        let target_dir = tempfile::tempdir().unwrap();
        let target = Store::open(target_dir.path()).unwrap();
        // Something the image does not hold must be gone after the install.
        target
            .write(|tx| tx.put_job(&test_support::job(99, test_support::on_demand("stray"))))
            .unwrap();
        target.install_image(&image).unwrap();
        assert_eq!(export(&target), export(source.store()));
        assert_eq!(target.export_image().unwrap(), image);
        assert!(target.read().unwrap().job(99).unwrap().is_none());

        // And it survives a reopen.
        drop(target);
        let target = Store::open(target_dir.path()).unwrap();
        assert_eq!(export(&target), export(source.store()));
    }

    #[test]
    fn a_malformed_image_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .write(|tx| tx.put_job(&test_support::job(1, test_support::on_demand("kept"))))
            .unwrap();
        let before = export(&store);
        let mut image = store.export_image().unwrap();
        // A job id (a fixed-width u64 key) of three bytes.
        if let Some(jobs) = image.tables.iter_mut().find(|t| t.name == "jobs") {
            jobs.rows.push(Row {
                key: vec![1, 2, 3],
                value: b"{}".to_vec(),
            });
        }
        let error = store.install_image(&image).unwrap_err().to_string();
        assert!(error.contains("table jobs: malformed key"), "{error}");
        assert_eq!(export(&store), before);

        let mut newer = store.export_image().unwrap();
        newer.schema_version += 1;
        let error = store.install_image(&newer).unwrap_err().to_string();
        assert!(error.contains("schema version"), "{error}");

        let mut unknown = store.export_image().unwrap();
        unknown.tables.push(TableImage {
            name: "mystery".into(),
            rows: Vec::new(),
        });
        let error = store.install_image(&unknown).unwrap_err().to_string();
        assert!(error.contains("unknown table \"mystery\""), "{error}");
        assert_eq!(export(&store), before);
    }
}
