//! Replays the control-plane fuzz corpora (ctl/fuzz/corpus/<target>/*) through the entry
//! points the cargo-fuzz targets call, plus seeded random inputs.

use std::fs;
use std::path::PathBuf;

use proptest::prelude::*;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let d = fs::read(&p).expect("read corpus file");
            (p, d)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn proto_corpus_replays() {
    let inputs = corpus("proto");
    assert!(inputs.len() >= 8, "{} inputs", inputs.len());
    for (path, data) in inputs {
        let r = std::panic::catch_unwind(|| ctl::fuzzing::proto(&data));
        assert!(r.is_ok(), "proto crashed on {}", path.display());
    }
}

#[test]
fn config_corpus_replays() {
    let inputs = corpus("config");
    assert!(inputs.len() >= 4, "{} inputs", inputs.len());
    for (path, data) in inputs {
        let r = std::panic::catch_unwind(|| ctl::fuzzing::config(&data));
        assert!(r.is_ok(), "config crashed on {}", path.display());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn proto_random(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        ctl::fuzzing::proto(&data);
    }
    #[test]
    fn config_random(text in "[a-z_=\\[\\]\" .0-9\n]{0,200}") {
        ctl::fuzzing::config(text.as_bytes());
    }
}
