//! Sections whose behaviour is not built yet: present at all, they stop the gateway
//! with "not supported yet" rather than being accepted and ignored.

use crate::config::file::FileConfig;
use crate::config::problems::{key, not_supported, Problems};

pub(crate) fn check(file: &FileConfig, problems: &mut Problems) {
    for (present, section, issue) in [(file.files.is_some(), "files", "the files API")] {
        if present {
            not_supported(problems, vec![key(section)], &format!("[{section}]"), issue);
        }
    }
}
