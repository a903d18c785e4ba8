//! The labelled corpus: one JSONL file per writer (see
//! `docs/protocol/labelling-guide.md`), read in a fixed order so training
//! is deterministic, with every line checked.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::model::{CATEGORIES, Example};

/// A corpus file or line that cannot be used, with where it is.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{path}:{line}: {reason}")]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{0}: no labelled messages (*.jsonl) found")]
    Empty(PathBuf),
}

/// The messages of `path` (a `.jsonl` file, or a folder of them read in
/// name order), each line checked against the guide. A line without a
/// `writer` takes the file's name.
pub fn load(path: &Path) -> Result<Vec<Example>, CorpusError> {
    let files = if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| CorpusError::Io(path.to_path_buf(), e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    let mut out = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| CorpusError::Io(f.clone(), e))?;
        let stem = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (i, l) in text.lines().enumerate() {
            if l.trim().is_empty() {
                continue;
            }
            let bad = |reason: String| CorpusError::Line {
                path: f.clone(),
                line: i + 1,
                reason,
            };
            let mut e: Example = serde_json::from_str(l).map_err(|e| bad(e.to_string()))?;
            if e.writer.is_empty() {
                e.writer = stem.clone();
            }
            if !matches!(e.lang.as_str(), "nl" | "fr" | "en") {
                return Err(bad(format!("lang `{}`: nl, fr or en", e.lang)));
            }
            if e.alert == e.categories.is_empty() {
                return Err(bad(
                    "categories must be given exactly when alert is true".into()
                ));
            }
            if let Some(c) = e
                .categories
                .iter()
                .find(|c| !CATEGORIES.contains(&c.as_str()))
            {
                return Err(bad(format!("unknown category `{c}`")));
            }
            out.push(e);
        }
    }
    if out.is_empty() {
        return Err(CorpusError::Empty(path.to_path_buf()));
    }
    Ok(out)
}

/// SHA-256 of the messages as the model sees them (writer, text, labels).
pub fn fingerprint(examples: &[Example]) -> String {
    let mut h = Sha256::new();
    for e in examples {
        h.update(e.writer.as_bytes());
        h.update([0]);
        h.update(e.text.as_bytes());
        h.update([0]);
        h.update([u8::from(e.alert), u8::from(e.called)]);
        for c in &e.categories {
            h.update(c.as_bytes());
            h.update([1]);
        }
        h.update([2]);
    }
    hex::encode(h.finalize())
}
