//! SR-IOV discovery and the sysfs knobs: PFs (`class/net/*/device/sriov_totalvfs`), their
//! VFs (`sriov_numvfs`, `virtfnN` links, VF netdevs), the PF driver (`device/driver`
//! link), `sriov_numvfs` writes, and the vendor trunk file `device/sriov/N/trunk`.
//!
//! Invariants: every path is below the injectable root (`/sys` on a real host, a temp
//! dir in tests); nothing here panics on odd sysfs contents, it returns [`SysfsError`].

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A sysfs read or write that failed.
#[derive(Debug, Error)]
pub enum SysfsError {
    /// No network interface of that name.
    #[error("pf {0}: no such network interface")]
    NoSuchInterface(String),
    /// The interface exists but has no SR-IOV capability.
    #[error("pf {pf}: no SR-IOV ({reason})")]
    NoSriov {
        /// Interface name.
        pf: String,
        /// Why (driver name or "virtual interface").
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A file held something unexpected.
    #[error("{}: unexpected content '{content}'", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What it held.
        content: String,
    },
    /// More VFs than the device supports.
    #[error("pf {pf}: cannot create {requested} VFs, the device supports at most {total}")]
    TooManyVfs {
        /// Interface name.
        pf: String,
        /// Requested count.
        requested: u32,
        /// `sriov_totalvfs`.
        total: u32,
    },
}

/// One VF as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VfDevice {
    /// VF index.
    pub vf: u32,
    /// PCI address of the VF (`virtfnN` link target).
    pub pci: String,
    /// Netdevs of the VF when a VF driver is bound (usually one).
    pub netdevs: Vec<String>,
}

/// One SR-IOV capable PF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PfDevice {
    /// Interface name.
    pub name: String,
    /// PCI address.
    pub pci: String,
    /// Kernel driver bound to the PF.
    pub driver: Option<String>,
    /// `sriov_totalvfs`.
    pub total_vfs: u32,
    /// `sriov_numvfs`.
    pub num_vfs: u32,
    /// VFs in index order.
    pub vfs: Vec<VfDevice>,
}

/// The sysfs tree, rooted at `/sys` or at a test directory.
#[derive(Debug, Clone)]
pub struct Sysfs {
    root: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Sysfs::new("/sys")
    }
}

impl Sysfs {
    /// A sysfs tree at `root` (the directory that holds `class/net`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Sysfs { root: root.into() }
    }

    /// The root this instance reads.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn netdev(&self, pf: &str) -> PathBuf {
        self.root.join("class/net").join(pf)
    }

    fn device(&self, pf: &str) -> PathBuf {
        self.netdev(pf).join("device")
    }

    /// Path of the vendor trunk file of VF `vf`.
    pub fn trunk_path(&self, pf: &str, vf: u32) -> PathBuf {
        self.device(pf)
            .join("sriov")
            .join(vf.to_string())
            .join("trunk")
    }

    /// Names of all interfaces that have `device/sriov_totalvfs`, sorted.
    pub fn pf_names(&self) -> Result<Vec<String>, SysfsError> {
        let dir = self.root.join("class/net");
        let entries = fs::read_dir(&dir).map_err(|source| SysfsError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| SysfsError::Io {
                path: dir.clone(),
                source,
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if self.device(&name).join("sriov_totalvfs").exists() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Driver bound to the interface's device, from the `device/driver` link.
    pub fn driver(&self, pf: &str) -> Option<String> {
        link_name(&self.device(pf).join("driver"))
    }

    /// Checks that `pf` exists and is SR-IOV capable; the error says why not.
    pub fn check_pf(&self, pf: &str) -> Result<(), SysfsError> {
        if pf.is_empty() || pf.contains('/') || !self.netdev(pf).exists() {
            return Err(SysfsError::NoSuchInterface(pf.to_string()));
        }
        if !self.device(pf).exists() {
            return Err(SysfsError::NoSriov {
                pf: pf.to_string(),
                reason: "virtual interface without a PCI device".into(),
            });
        }
        if !self.device(pf).join("sriov_totalvfs").exists() {
            let reason = match self.driver(pf) {
                Some(d) => format!("driver {d} has no sriov_totalvfs"),
                None => "device has no sriov_totalvfs".into(),
            };
            return Err(SysfsError::NoSriov {
                pf: pf.to_string(),
                reason,
            });
        }
        Ok(())
    }

    /// Why `pf` cannot have VFs, or `None` when it can.
    pub fn no_sriov_reason(&self, pf: &str) -> Option<String> {
        match self.check_pf(pf) {
            Err(SysfsError::NoSriov { reason, .. }) => Some(reason),
            _ => None,
        }
    }

    /// Everything sysfs says about the PF `pf`.
    pub fn pf(&self, pf: &str) -> Result<PfDevice, SysfsError> {
        self.check_pf(pf)?;
        let dev = self.device(pf);
        let total_vfs = read_u32(&dev.join("sriov_totalvfs"))?;
        let num_vfs = read_u32(&dev.join("sriov_numvfs"))?;
        let pci = link_name(&dev).unwrap_or_default();
        let mut vfs = Vec::new();
        let entries = fs::read_dir(&dev).map_err(|source| SysfsError::Io {
            path: dev.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| SysfsError::Io {
                path: dev.clone(),
                source,
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(vf) = name
                .strip_prefix("virtfn")
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let link = dev.join(&name);
            let netdevs = list_dir(&link.join("net"));
            vfs.push(VfDevice {
                vf,
                pci: link_name(&link).unwrap_or_default(),
                netdevs,
            });
        }
        vfs.sort_by_key(|v| v.vf);
        Ok(PfDevice {
            name: pf.to_string(),
            pci,
            driver: self.driver(pf),
            total_vfs,
            num_vfs,
            vfs,
        })
    }

    /// All SR-IOV capable PFs.
    pub fn pfs(&self) -> Result<Vec<PfDevice>, SysfsError> {
        self.pf_names()?.iter().map(|n| self.pf(n)).collect()
    }

    /// Writes `sriov_numvfs`. Going from one non-zero count to another passes through 0,
    /// as the kernel requires. Returns the previous count.
    pub fn set_num_vfs(&self, pf: &str, n: u32) -> Result<u32, SysfsError> {
        self.check_pf(pf)?;
        let dev = self.device(pf);
        let total = read_u32(&dev.join("sriov_totalvfs"))?;
        if n > total {
            return Err(SysfsError::TooManyVfs {
                pf: pf.to_string(),
                requested: n,
                total,
            });
        }
        let path = dev.join("sriov_numvfs");
        let current = read_u32(&path)?;
        if current == n {
            return Ok(current);
        }
        if current != 0 && n != 0 {
            write_str(&path, "0")?;
        }
        write_str(&path, &n.to_string())?;
        Ok(current)
    }

    /// True when VF `vf` has a vendor trunk file.
    pub fn has_trunk(&self, pf: &str, vf: u32) -> bool {
        self.trunk_path(pf, vf).is_file()
    }

    /// Raw content of the vendor trunk file.
    pub fn read_trunk(&self, pf: &str, vf: u32) -> Result<String, SysfsError> {
        read_string(&self.trunk_path(pf, vf))
    }

    /// Writes one command line ("add ..." / "rem ...") into the vendor trunk file.
    pub fn write_trunk(&self, pf: &str, vf: u32, line: &str) -> Result<(), SysfsError> {
        write_str(&self.trunk_path(pf, vf), line)
    }
}

fn link_name(path: &Path) -> Option<String> {
    fs::read_link(path)
        .ok()
        .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
}

fn list_dir(path: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(path)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn read_string(path: &Path) -> Result<String, SysfsError> {
    fs::read_to_string(path).map_err(|source| SysfsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read_u32(path: &Path) -> Result<u32, SysfsError> {
    let s = read_string(path)?;
    s.trim().parse().map_err(|_| SysfsError::Parse {
        path: path.to_path_buf(),
        content: s.trim().to_string(),
    })
}

fn write_str(path: &Path, value: &str) -> Result<(), SysfsError> {
    // sysfs attributes take the whole value in one write(2).
    fs::write(path, value.as_bytes()).map_err(|source| SysfsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Builds fake sysfs trees shaped like the kernel's, for tests (here and in dependents).
pub mod fake {
    use std::fs;
    use std::io;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    /// Adds a PCI NIC `name` at `pci` bound to `driver`, with SR-IOV when `total_vfs` is
    /// `Some`, and `num_vfs` VFs (VF i at PCI function `vf_pci(i)`, netdev `name`v`i`
    /// when `with_netdevs`).
    pub fn add_nic(
        root: &Path,
        name: &str,
        pci: &str,
        driver: &str,
        total_vfs: Option<u32>,
        num_vfs: u32,
        with_netdevs: bool,
    ) -> io::Result<()> {
        let devices = root.join("devices/pci0000:00");
        let dev = devices.join(pci);
        fs::create_dir_all(dev.join("net").join(name))?;
        let drivers = root.join("bus/pci/drivers").join(driver);
        fs::create_dir_all(&drivers)?;
        symlink(
            format!("../../../bus/pci/drivers/{driver}"),
            dev.join("driver"),
        )?;
        let class = root.join("class/net");
        fs::create_dir_all(&class)?;
        symlink(
            format!("../../devices/pci0000:00/{pci}/net/{name}"),
            class.join(name),
        )?;
        symlink(
            format!("../../../{pci}"),
            dev.join("net").join(name).join("device"),
        )?;
        if let Some(total) = total_vfs {
            fs::write(dev.join("sriov_totalvfs"), format!("{total}\n"))?;
            fs::write(dev.join("sriov_numvfs"), format!("{num_vfs}\n"))?;
            for i in 0..num_vfs {
                let vf_pci = vf_pci(pci, i);
                let vf_dev = devices.join(&vf_pci);
                fs::create_dir_all(&vf_dev)?;
                if with_netdevs {
                    fs::create_dir_all(vf_dev.join("net").join(format!("{name}v{i}")))?;
                }
                symlink(format!("../{vf_pci}"), dev.join(format!("virtfn{i}")))?;
            }
        }
        Ok(())
    }

    /// PCI address the fake tree gives VF `i` of the PF at `pci`.
    pub fn vf_pci(pci: &str, i: u32) -> String {
        let base = pci.rsplit_once(':').map(|(b, _)| b).unwrap_or(pci);
        format!("{base}:{:02x}.{}", 0x10 + i / 8, i % 8)
    }

    /// Adds a vendor trunk file for VF `vf` holding `content`.
    pub fn add_trunk_file(root: &Path, pci: &str, vf: u32, content: &str) -> io::Result<()> {
        let dir = root
            .join("devices/pci0000:00")
            .join(pci)
            .join("sriov")
            .join(vf.to_string());
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("trunk"), content)
    }

    /// Adds a virtual interface (no `device` link), like a veth.
    pub fn add_virtual(root: &Path, name: &str) -> io::Result<()> {
        fs::create_dir_all(root.join("devices/virtual/net").join(name))?;
        let class = root.join("class/net");
        fs::create_dir_all(&class)?;
        symlink(
            format!("../../devices/virtual/net/{name}"),
            class.join(name),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, Sysfs) {
        let dir = tempfile::tempdir().expect("tempdir");
        fake::add_nic(dir.path(), "eth0", "0000:01:00.0", "igb", Some(7), 3, false).expect("eth0");
        fake::add_nic(
            dir.path(),
            "eth1",
            "0000:02:00.0",
            "mlx5_core",
            Some(8),
            2,
            true,
        )
        .expect("eth1");
        fake::add_nic(dir.path(), "eth2", "0000:03:00.0", "e1000e", None, 0, false).expect("eth2");
        fake::add_virtual(dir.path(), "veth7").expect("veth");
        let sysfs = Sysfs::new(dir.path());
        (dir, sysfs)
    }

    #[test]
    fn lists_only_sriov_capable_pfs() {
        let (_dir, sysfs) = tree();
        assert_eq!(sysfs.pf_names().expect("names"), vec!["eth0", "eth1"]);
    }

    #[test]
    fn reads_pf_and_vfs() {
        let (_dir, sysfs) = tree();
        let pf = sysfs.pf("eth0").expect("eth0");
        assert_eq!(pf.name, "eth0");
        assert_eq!(pf.pci, "0000:01:00.0");
        assert_eq!(pf.driver.as_deref(), Some("igb"));
        assert_eq!((pf.total_vfs, pf.num_vfs), (7, 3));
        assert_eq!(
            pf.vfs,
            vec![
                VfDevice {
                    vf: 0,
                    pci: "0000:01:10.0".into(),
                    netdevs: vec![]
                },
                VfDevice {
                    vf: 1,
                    pci: "0000:01:10.1".into(),
                    netdevs: vec![]
                },
                VfDevice {
                    vf: 2,
                    pci: "0000:01:10.2".into(),
                    netdevs: vec![]
                },
            ]
        );
        let pf1 = sysfs.pf("eth1").expect("eth1");
        assert_eq!(pf1.driver.as_deref(), Some("mlx5_core"));
        assert_eq!(pf1.vfs[1].netdevs, vec!["eth1v1"]);
        assert_eq!(pf1.vfs[1].pci, "0000:02:10.1");
    }

    #[test]
    fn explains_why_an_interface_has_no_sriov() {
        let (_dir, sysfs) = tree();
        assert_eq!(
            sysfs.pf("eth2").expect_err("no sriov").to_string(),
            "pf eth2: no SR-IOV (driver e1000e has no sriov_totalvfs)"
        );
        assert_eq!(
            sysfs.pf("veth7").expect_err("virtual").to_string(),
            "pf veth7: no SR-IOV (virtual interface without a PCI device)"
        );
        assert!(matches!(
            sysfs.pf("nope0"),
            Err(SysfsError::NoSuchInterface(n)) if n == "nope0"
        ));
        assert!(matches!(
            sysfs.pf("../x"),
            Err(SysfsError::NoSuchInterface(_))
        ));
    }

    #[test]
    fn numvfs_passes_through_zero_and_checks_total() {
        let (dir, sysfs) = tree();
        // A plain file keeps only the last write: 0 then 5 leaves 5.
        assert_eq!(sysfs.set_num_vfs("eth0", 5).expect("set"), 3);
        let path = dir
            .path()
            .join("devices/pci0000:00/0000:01:00.0/sriov_numvfs");
        assert_eq!(fs::read_to_string(&path).expect("read"), "5");
        assert_eq!(sysfs.set_num_vfs("eth0", 5).expect("same"), 5);
        assert_eq!(
            sysfs
                .set_num_vfs("eth0", 8)
                .expect_err("too many")
                .to_string(),
            "pf eth0: cannot create 8 VFs, the device supports at most 7"
        );
    }

    #[test]
    fn trunk_file_is_found_per_vf() {
        let (dir, sysfs) = tree();
        fake::add_trunk_file(dir.path(), "0000:02:00.0", 1, "10 11\n").expect("trunk");
        assert!(sysfs.has_trunk("eth1", 1));
        assert!(!sysfs.has_trunk("eth1", 0));
        assert_eq!(sysfs.read_trunk("eth1", 1).expect("read"), "10 11\n");
        sysfs.write_trunk("eth1", 1, "add 20 20").expect("write");
        assert_eq!(sysfs.read_trunk("eth1", 1).expect("read"), "add 20 20");
    }

    #[test]
    fn garbage_numvfs_is_an_error_not_a_panic() {
        let (dir, sysfs) = tree();
        fs::write(
            dir.path()
                .join("devices/pci0000:00/0000:01:00.0/sriov_numvfs"),
            "lots",
        )
        .expect("write");
        assert!(
            matches!(sysfs.pf("eth0"), Err(SysfsError::Parse { content, .. }) if content == "lots")
        );
    }
}
