//! Crash-safe journal of VF state: for each VF we changed, its original state (taken
//! before the first change) and the settings we last set.
//!
//! Layout: `STATE_DIR/<pf>/vf<N>.json`, one JSON [`JournalEntry`] per VF.
//! Invariants: an entry is written before the change it protects; a write is
//! tmp file + fsync + rename + fsync of the directory, so after a crash a reader sees
//! either the old entry or the new one, never a torn file; `original` is never
//! overwritten once written (only [`Journal::remove`] after a restore drops it); an entry
//! is read back only from its own file (`<pf>/vf<N>.json` must hold PF `pf` VF `N`), and
//! one unreadable entry does not hide the others ([`Journal::scan`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::{VfConfig, VfState};

/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/vswitch/sriov";

/// A journal operation that failed.
#[derive(Debug, Error)]
pub enum JournalError {
    /// A file operation failed.
    #[error("journal {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// An entry could not be decoded.
    #[error("journal {}: corrupt entry: {reason}", path.display())]
    Corrupt {
        /// The entry file.
        path: PathBuf,
        /// Decoder message.
        reason: String,
    },
    /// A PF name that cannot be a directory name.
    #[error("journal: invalid interface name '{0}'")]
    BadName(String),
}

/// What the journal keeps for one VF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalEntry {
    /// PF interface name.
    pub pf: String,
    /// PF PCI address when it was journaled.
    pub pf_pci: String,
    /// VF index.
    pub vf: u32,
    /// State before our first change.
    pub original: VfState,
    /// What we last set successfully (merged over time, newest value per setting).
    pub desired: VfConfig,
}

/// One entry file found by [`Journal::scan`]: the VF index its name gives, and the
/// entry or the error reading it.
pub type ScannedEntry = (u32, Result<JournalEntry, JournalError>);

/// The journal directory.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// A journal kept in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Journal { dir: dir.into() }
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn pf_dir(&self, pf: &str) -> Result<PathBuf, JournalError> {
        if pf.is_empty() || pf.starts_with('.') || pf.contains('/') {
            return Err(JournalError::BadName(pf.to_string()));
        }
        Ok(self.dir.join(pf))
    }

    fn entry_path(&self, pf: &str, vf: u32) -> Result<PathBuf, JournalError> {
        Ok(self.pf_dir(pf)?.join(format!("vf{vf}.json")))
    }

    /// The entry of `pf` VF `vf`, if any.
    pub fn load(&self, pf: &str, vf: u32) -> Result<Option<JournalEntry>, JournalError> {
        let path = self.entry_path(pf, vf)?;
        match fs::read(&path) {
            Ok(bytes) => decode(&path, pf, vf, &bytes).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(JournalError::Io { path, source }),
        }
    }

    /// Every entry file of `pf`, in VF order: the VF index its name gives, and the entry
    /// or why it cannot be read (a corrupt entry does not hide the others). Fails as a
    /// whole only when the PF's directory cannot be listed.
    pub fn scan(&self, pf: &str) -> Result<Vec<ScannedEntry>, JournalError> {
        let dir = self.pf_dir(pf)?;
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(JournalError::Io { path: dir, source }),
        };
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|source| JournalError::Io {
                path: dir.clone(),
                source,
            })?;
            let name = ent.file_name().to_string_lossy().into_owned();
            let Some(vf) = name
                .strip_prefix("vf")
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // `vf007.json` is not the file of VF 7: only the canonical name is an entry.
            if name != format!("vf{vf}.json") {
                continue;
            }
            let path = ent.path();
            let entry = fs::read(&path)
                .map_err(|source| JournalError::Io {
                    path: path.clone(),
                    source,
                })
                .and_then(|bytes| decode(&path, pf, vf, &bytes));
            out.push((vf, entry));
        }
        out.sort_by_key(|(vf, _)| *vf);
        Ok(out)
    }

    /// All entries of `pf`, in VF order; the first unreadable one fails the whole list
    /// ([`Journal::scan`] reports each).
    pub fn entries(&self, pf: &str) -> Result<Vec<JournalEntry>, JournalError> {
        self.scan(pf)?.into_iter().map(|(_, e)| e).collect()
    }

    /// Writes `entry` atomically (tmp + fsync + rename + fsync dir).
    pub fn save(&self, entry: &JournalEntry) -> Result<(), JournalError> {
        let dir = self.pf_dir(&entry.pf)?;
        create_dir_durable(&dir)?;
        let path = self.entry_path(&entry.pf, entry.vf)?;
        let tmp = dir.join(format!(".vf{}.json.tmp", entry.vf));
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| JournalError::Io { path, source }
        };
        let mut bytes = serde_json::to_vec_pretty(entry).map_err(|e| JournalError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        bytes.push(b'\n');
        {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(io_err(&tmp))?;
            f.write_all(&bytes).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        sync_dir(&dir)
    }

    /// Removes the entry of `pf` VF `vf` (durably). Missing entries are not an error.
    pub fn remove(&self, pf: &str, vf: u32) -> Result<(), JournalError> {
        let path = self.entry_path(pf, vf)?;
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.pf_dir(pf)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(JournalError::Io { path, source }),
        }
    }
}

/// Decodes the entry file of `pf` VF `vf`, which must name that PF and VF.
fn decode(path: &Path, pf: &str, vf: u32, bytes: &[u8]) -> Result<JournalEntry, JournalError> {
    let corrupt = |reason: String| JournalError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let e: JournalEntry = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    if (e.pf.as_str(), e.vf) != (pf, vf) {
        return Err(corrupt(format!(
            "holds pf {} vf {}, not pf {pf} vf {vf}",
            e.pf, e.vf
        )));
    }
    Ok(e)
}

fn create_dir_durable(dir: &Path) -> Result<(), JournalError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|source| JournalError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    // Make the new directories' entries durable: fsync each one and its parents.
    for d in dir.ancestors().filter(|d| !d.as_os_str().is_empty()) {
        sync_dir(d)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|source| JournalError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LinkState, MacAddr, VlanMode, VlanProto};

    fn state(vf: u32) -> VfState {
        VfState {
            vf,
            mac: MacAddr::ZERO,
            vlan: 0,
            qos: 0,
            proto: VlanProto::Dot1Q,
            spoofchk: Some(true),
            trust: Some(false),
            link_state: Some(LinkState::Auto),
            min_tx_rate: 0,
            max_tx_rate: 0,
            trunk: None,
        }
    }

    fn entry(vf: u32) -> JournalEntry {
        JournalEntry {
            pf: "eth0".into(),
            pf_pci: "0000:01:00.0".into(),
            vf,
            original: state(vf),
            desired: VfConfig {
                vlan: Some(VlanMode::Access {
                    vid: 10,
                    qos: 3,
                    proto: VlanProto::Dot1Q,
                }),
                ..VfConfig::default()
            },
        }
    }

    #[test]
    fn save_load_list_remove() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journal::new(dir.path().join("state/sriov"));
        assert_eq!(j.load("eth0", 1).expect("load"), None);
        assert!(j.entries("eth0").expect("entries").is_empty());
        j.save(&entry(2)).expect("save 2");
        j.save(&entry(0)).expect("save 0");
        assert_eq!(j.load("eth0", 2).expect("load"), Some(entry(2)));
        let all = j.entries("eth0").expect("entries");
        assert_eq!(all.iter().map(|e| e.vf).collect::<Vec<_>>(), vec![0, 2]);
        // No temp files are left behind.
        let names: Vec<String> = fs::read_dir(dir.path().join("state/sriov/eth0"))
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(names, vec!["vf0.json", "vf2.json"]);
        j.remove("eth0", 2).expect("remove");
        j.remove("eth0", 2).expect("remove twice");
        assert_eq!(j.load("eth0", 2).expect("load"), None);
    }

    #[test]
    fn overwrite_replaces_whole_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journal::new(dir.path());
        j.save(&entry(1)).expect("save");
        let mut e = entry(1);
        e.desired.trust = Some(true);
        j.save(&e).expect("save again");
        assert_eq!(j.load("eth0", 1).expect("load"), Some(e));
    }

    #[test]
    fn stale_tmp_and_corrupt_files_are_handled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journal::new(dir.path());
        j.save(&entry(1)).expect("save");
        // A crash between write and rename leaves a tmp file: it is ignored.
        fs::write(dir.path().join("eth0/.vf3.json.tmp"), b"{partial").expect("tmp");
        assert_eq!(j.entries("eth0").expect("entries").len(), 1);
        fs::write(dir.path().join("eth0/vf4.json"), b"{not json").expect("corrupt");
        assert!(matches!(
            j.load("eth0", 4),
            Err(JournalError::Corrupt { .. })
        ));
        assert!(matches!(j.load("../etc", 0), Err(JournalError::BadName(_))));
    }

    /// Each entry file on its own: a corrupt one, or one holding another VF's entry, is an
    /// error for that VF only; `entries` still fails on the first.
    #[test]
    fn scan_reports_each_entry_on_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journal::new(dir.path());
        j.save(&entry(0)).expect("save 0");
        j.save(&entry(2)).expect("save 2");
        j.save(&entry(5)).expect("save 5");
        let pf_dir = dir.path().join("eth0");
        fs::write(pf_dir.join("vf1.json"), b"{not json").expect("corrupt");
        fs::copy(pf_dir.join("vf5.json"), pf_dir.join("vf3.json")).expect("copy");
        fs::copy(pf_dir.join("vf5.json"), pf_dir.join("vf05.json")).expect("copy");
        let text = |r: &Result<JournalEntry, JournalError>| match r {
            Ok(e) => format!("vf {}", e.vf),
            Err(e) => e.to_string(),
        };
        let got: Vec<(u32, String)> = j
            .scan("eth0")
            .expect("scan")
            .iter()
            .map(|(vf, r)| (*vf, text(r)))
            .collect();
        let path = |n: &str| pf_dir.join(n).display().to_string();
        assert_eq!(
            got,
            vec![
                (0, "vf 0".to_string()),
                (
                    1,
                    format!(
                        "journal {}: corrupt entry: key must be a string at line 1 column 2",
                        path("vf1.json")
                    )
                ),
                (2, "vf 2".to_string()),
                (
                    3,
                    format!(
                        "journal {}: corrupt entry: holds pf eth0 vf 5, not pf eth0 vf 3",
                        path("vf3.json")
                    )
                ),
                (5, "vf 5".to_string()),
            ]
        );
        assert_eq!(
            j.load("eth0", 3).expect_err("vf 5's entry").to_string(),
            got[3].1
        );
        assert_eq!(j.entries("eth0").expect_err("strict").to_string(), got[1].1);
    }
}
