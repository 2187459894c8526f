//! The inodes of the modelled filesystem: a file's visible and durable
//! content, a directory's visible and durable entries.

use super::*;

#[derive(Debug)]
pub(super) enum Node {
    File(FileNode),
    Dir(DirNode),
}

#[derive(Debug, Default)]
pub(super) struct FileNode {
    /// What a process reads: everything appended since the file was created
    /// or last truncated.
    pub(super) content: Vec<u8>,
    /// Length of the durable prefix of `content`.
    /// Invariant: `durable_len <= content.len()`, and `durable_len == 0`
    /// whenever `truncated_durable` is set.
    pub(super) durable_len: usize,
    /// The durable content of a file truncated (by `create_file`) since its
    /// last sync: the disk still holds the old bytes, not a prefix of
    /// `content`. `None` when the durable content is `content[..durable_len]`.
    pub(super) truncated_durable: Option<Vec<u8>>,
    /// The file's size as `zero_extend` left it: a process reads zeros from
    /// `content.len()` up to here. Appends overwrite them (the append
    /// position is `content.len()`).
    pub(super) zeroed_to: usize,
    /// The same for the durable file: after a crash it reads zeros from the
    /// end of the surviving content up to here.
    /// Invariant: 0 whenever `truncated_durable` is set (the old zeros are
    /// part of its bytes).
    pub(super) durable_zeroed_to: usize,
}

impl FileNode {
    pub(super) fn durable(&self) -> &[u8] {
        match &self.truncated_durable {
            Some(old) => old,
            None => &self.content[..self.durable_len],
        }
    }

    /// What a crash would keep if the durable content is kept whole: the
    /// durable bytes, then the durable zero tail.
    pub(super) fn durable_with_zeros(&self) -> Vec<u8> {
        let mut bytes = self.durable().to_vec();
        if self.durable_zeroed_to > bytes.len() {
            bytes.resize(self.durable_zeroed_to, 0);
        }
        bytes
    }

    /// The file's size as a process sees it.
    pub(super) fn visible_len(&self) -> usize {
        self.content.len().max(self.zeroed_to)
    }

    /// The file as a process reads it: the content, then the zero tail.
    pub(super) fn visible(&self) -> Vec<u8> {
        self.visible_range(0, self.visible_len())
    }

    /// Bytes `start..end` of the file as a process reads it.
    /// Precondition: `start <= end <= visible_len()`.
    pub(super) fn visible_range(&self, start: usize, end: usize) -> Vec<u8> {
        debug_assert!(start <= end && end <= self.visible_len());
        let mut bytes = Vec::with_capacity(end - start);
        let from = start.min(self.content.len());
        let to = end.min(self.content.len());
        bytes.extend_from_slice(&self.content[from..to]);
        bytes.resize(end - start, 0);
        bytes
    }

    /// Makes everything a process reads durable: content and zero tail.
    pub(super) fn make_durable(&mut self) {
        self.truncated_durable = None;
        self.durable_len = self.content.len();
        self.durable_zeroed_to = self.zeroed_to;
        self.check_invariants();
    }

    pub(super) fn check_invariants(&self) {
        debug_assert!(self.durable_len <= self.content.len());
        debug_assert!(self.truncated_durable.is_none() || self.durable_len == 0);
        debug_assert!(self.truncated_durable.is_none() || self.durable_zeroed_to == 0);
    }
}

#[derive(Debug, Default)]
pub(super) struct DirNode {
    /// Entries a process sees.
    pub(super) visible: BTreeMap<String, InodeId>,
    /// Entries as of the last `sync_dir`: what a crash reverts to.
    pub(super) durable: BTreeMap<String, InodeId>,
}
