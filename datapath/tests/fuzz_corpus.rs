//! Replays the fuzz corpora (datapath/fuzz/corpus/<target>/*) through the same entry points
//! the cargo-fuzz targets call, plus a batch of seeded random inputs, so `make test` checks
//! every input the fuzzers ever kept.

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
            let data = fs::read(&p).expect("read corpus file");
            (p, data)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn parse_corpus_replays() {
    let inputs = corpus("parse");
    assert!(
        inputs.len() >= 8,
        "parse corpus has {} inputs",
        inputs.len()
    );
    for (path, data) in inputs {
        let r = std::panic::catch_unwind(|| datapath::fuzzing::parse(&data));
        assert!(r.is_ok(), "parse crashed on {}", path.display());
    }
}

#[test]
fn pipeline_corpus_replays() {
    let inputs = corpus("pipeline");
    assert!(
        inputs.len() >= 8,
        "pipeline corpus has {} inputs",
        inputs.len()
    );
    for (path, data) in inputs {
        let r = std::panic::catch_unwind(|| datapath::fuzzing::pipeline(&data));
        assert!(r.is_ok(), "pipeline crashed on {}", path.display());
    }
}

#[test]
fn offload_corpus_replays() {
    let inputs = corpus("offload");
    assert!(
        inputs.len() >= 8,
        "offload corpus has {} inputs",
        inputs.len()
    );
    for (path, data) in inputs {
        let r = std::panic::catch_unwind(|| datapath::fuzzing::offload(&data));
        assert!(r.is_ok(), "offload crashed on {}", path.display());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn parse_random(data in proptest::collection::vec(any::<u8>(), 0..128)) {
        datapath::fuzzing::parse(&data);
    }

    #[test]
    fn pipeline_random(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        datapath::fuzzing::pipeline(&data);
    }

    #[test]
    fn offload_random(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        datapath::fuzzing::offload(&data);
    }
}
