//! Records of attachments: what DEL of a VF must put back (the netdev's name, MAC and
//! MTU), and what a garbage collection needs to replay a DEL the runtime never sent (the
//! network configuration, the namespace, `CNI_PATH`).
//!
//! Layout: `STATE_DIR/<network>/<container id>-<ifname>.json`. Invariants: a record is
//! written atomically (temporary file, fsync, rename) after the attachment exists and
//! removed after it is gone, so a record never names an attachment that was not made; an
//! unreadable record is an error for its attachment alone.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{CniError, Code};

/// A VF moved into a pod, and what its netdev was before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VfRecord {
    pub pf: String,
    pub vf: u32,
    pub pci: String,
    /// The netdev's name, MAC, MTU and up state in the host namespace before ADD (the
    /// VF's settings are in the sriov journal).
    pub netdev: String,
    pub mac: Option<String>,
    pub mtu: u32,
    pub up: bool,
    /// Its index in the pod once moved there: DEL moves back only that device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_ifindex: Option<u32>,
}

/// One attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub network: String,
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    /// `CNI_ARGS` and `CNI_PATH` of the ADD.
    pub args: Vec<(String, String)>,
    pub cni_path: Vec<PathBuf>,
    /// The network configuration of the ADD (what DEL needs).
    pub config: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vf: Option<VfRecord>,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> CniError {
    move |e| CniError::new(Code::Io, format!("{what}: {e}"))
}

/// The record file of an attachment.
pub fn path(dir: &Path, network: &str, container_id: &str, ifname: &str) -> PathBuf {
    dir.join(network)
        .join(format!("{container_id}-{ifname}.json"))
}

impl Record {
    pub fn path(&self, dir: &Path) -> PathBuf {
        path(dir, &self.network, &self.container_id, &self.ifname)
    }

    /// Writes the record atomically.
    pub fn save(&self, dir: &Path) -> Result<(), CniError> {
        let p = self.path(dir);
        let parent = p.parent().unwrap_or(dir).to_path_buf();
        fs::create_dir_all(&parent).map_err(io(format!("create {}", parent.display())))?;
        let tmp = parent.join(format!(".{}.tmp", std::process::id()));
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| CniError::new(Code::Internal, format!("encode record: {e}")))?;
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            fs::rename(&tmp, &p)?;
            fs::File::open(&parent)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io(format!("write {}", p.display()))(e)
        })
    }
}

/// The record of an attachment, if there is one.
pub fn load(
    dir: &Path,
    network: &str,
    container_id: &str,
    ifname: &str,
) -> Result<Option<Record>, CniError> {
    read(&path(dir, network, container_id, ifname))
}

fn read(p: &Path) -> Result<Option<Record>, CniError> {
    match fs::read(p) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            CniError::new(Code::Io, format!("{}: unreadable record: {e}", p.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(format!("read {}", p.display()))(e)),
    }
}

/// Removes an attachment's record (absent: fine).
pub fn remove(dir: &Path, network: &str, container_id: &str, ifname: &str) -> Result<(), CniError> {
    let p = path(dir, network, container_id, ifname);
    match fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(format!("remove {}", p.display()))(e)),
    }
}

/// Every record of `network` (all networks when `None`), each read or failed on its own.
pub fn list(dir: &Path, network: Option<&str>) -> Vec<(PathBuf, Result<Record, CniError>)> {
    let nets: Vec<PathBuf> = match network {
        Some(n) => vec![dir.join(n)],
        None => fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default(),
    };
    let mut out = Vec::new();
    for net in nets {
        let Ok(rd) = fs::read_dir(&net) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for f in files {
            let r = read(&f).and_then(|r| {
                r.ok_or_else(|| CniError::new(Code::Io, format!("{}: vanished", f.display())))
            });
            out.push((f, r));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(cid: &str) -> Record {
        Record {
            network: "net1".into(),
            container_id: cid.into(),
            ifname: "eth0".into(),
            netns: "/run/netns/x".into(),
            args: vec![("K8S_POD_NAME".into(), "web".into())],
            cni_path: vec![PathBuf::from("/usr/lib/cni")],
            config: serde_json::json!({"cniVersion": "1.0.0", "name": "net1"}),
            vf: None,
        }
    }

    #[test]
    fn save_load_list_remove() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = record("aaa");
        let b = record("bbb");
        a.save(dir.path()).expect("save a");
        b.save(dir.path()).expect("save b");
        assert_eq!(
            load(dir.path(), "net1", "aaa", "eth0").expect("load"),
            Some(a.clone())
        );
        assert_eq!(load(dir.path(), "net1", "zzz", "eth0").expect("load"), None);
        fs::write(dir.path().join("net1/ccc-eth0.json"), b"{broken").expect("write");
        let all = list(dir.path(), None);
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].1.as_ref().expect("a"), &a);
        assert_eq!(all[1].1.as_ref().expect("b"), &b);
        let e = all[2].1.as_ref().expect_err("broken");
        assert!(e.msg.contains("unreadable record"), "{}", e.msg);
        remove(dir.path(), "net1", "aaa", "eth0").expect("remove");
        remove(dir.path(), "net1", "aaa", "eth0").expect("remove twice");
        assert_eq!(list(dir.path(), Some("net1")).len(), 2);
        assert!(list(dir.path(), Some("other")).is_empty());
    }
}
