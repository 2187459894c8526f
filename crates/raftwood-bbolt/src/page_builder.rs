//! Collects the elements of one branch or leaf page as the writer appends
//! them, and lays the page out as bbolt does: header, the element array,
//! then every key (and value) in element order.

use crate::page::{
    BRANCH_PAGE, ELEMENT_SIZE, LEAF_PAGE, MAX_ELEMENTS_PER_PAGE, PAGE_HEADER_SIZE, PageHeader,
    element_offset,
};

/// One element's fixed part; its key and value are in the builder's data.
#[derive(Debug, Clone, Copy)]
struct ElementSpec {
    flags: u32,
    key_len: u32,
    value_len: u32,
    child: u64,
}

/// The page being filled at one level of a bucket's tree.
#[derive(Debug)]
pub struct PageBuilder {
    is_leaf: bool,
    elements: Vec<ElementSpec>,
    /// Keys and values, concatenated in element order.
    data: Vec<u8>,
}

impl PageBuilder {
    /// An empty leaf (`is_leaf`) or branch page.
    pub fn new(is_leaf: bool) -> PageBuilder {
        PageBuilder {
            is_leaf,
            elements: Vec::new(),
            data: Vec::new(),
        }
    }

    /// Whether the page holds no element yet.
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    /// Elements so far.
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// Bytes the page needs: header, elements, keys and values.
    pub fn size(&self) -> usize {
        PAGE_HEADER_SIZE + self.elements.len() * ELEMENT_SIZE + self.data.len()
    }

    /// The bytes an element of this key and value adds to a page.
    pub fn element_size(key: &[u8], value: &[u8]) -> usize {
        ELEMENT_SIZE + key.len() + value.len()
    }

    /// The first key: what the parent branch page records for this page.
    pub fn first_key(&self) -> &[u8] {
        let first = self.elements.first().map_or(0, |e| e.key_len as usize);
        &self.data[..first]
    }

    /// Appends a leaf element. The caller has checked the sizes fit u32.
    pub fn push_leaf(&mut self, flags: u32, key: &[u8], value: &[u8]) {
        assert!(self.is_leaf, "a leaf element pushed onto a branch page");
        self.push(
            ElementSpec {
                flags,
                key_len: len32(key),
                value_len: len32(value),
                child: 0,
            },
            key,
            value,
        );
    }

    /// Appends a branch element pointing at `child`.
    pub fn push_branch(&mut self, key: &[u8], child: u64) {
        assert!(!self.is_leaf, "a branch element pushed onto a leaf page");
        assert!(child >= 2, "a branch element pointing at meta page {child}");
        self.push(
            ElementSpec {
                flags: 0,
                key_len: len32(key),
                value_len: 0,
                child,
            },
            key,
            &[],
        );
    }

    fn push(&mut self, spec: ElementSpec, key: &[u8], value: &[u8]) {
        self.elements.push(spec);
        self.data.extend_from_slice(key);
        self.data.extend_from_slice(value);
    }

    /// Lays the page out as page `id` padded to whole pages of `page_size`
    /// (an overflowing page spans several), and empties the builder.
    pub fn take_page(&mut self, id: u64, page_size: usize) -> Vec<u8> {
        assert!(id >= 2, "page {id} is a meta page");
        let pages = self.size().div_ceil(page_size).max(1);
        let overflow = u32::try_from(pages - 1);
        assert!(
            overflow.is_ok(),
            "a page of {} bytes overflows bbolt's u32 overflow count",
            self.size()
        );
        let mut out = vec![0; pages * page_size];
        self.lay_out(id, overflow.unwrap_or(u32::MAX), &mut out);
        self.clear();
        out
    }

    /// Lays the page out exactly (no padding) with id 0, as an inline
    /// bucket's page, and empties the builder.
    pub fn take_inline(&mut self) -> Vec<u8> {
        let mut out = vec![0; self.size()];
        self.lay_out(0, 0, &mut out);
        self.clear();
        out
    }

    fn lay_out(&self, id: u64, overflow: u32, out: &mut [u8]) {
        assert!(out.len() >= self.size(), "the page does not fit its buffer");
        assert!(
            self.elements.len() < MAX_ELEMENTS_PER_PAGE,
            "a page of {} elements",
            self.elements.len()
        );
        let flags = if self.is_leaf { LEAF_PAGE } else { BRANCH_PAGE };
        let count = u16::try_from(self.elements.len()).unwrap_or(u16::MAX);
        PageHeader {
            id,
            flags,
            count,
            overflow,
        }
        .encode(out);
        let data_start = element_offset(self.elements.len());
        out[data_start..data_start + self.data.len()].copy_from_slice(&self.data);
        let mut data_at = data_start;
        for (index, element) in self.elements.iter().enumerate() {
            let at = element_offset(index);
            // The key is this far past the element's own start.
            let pos = (data_at - at) as u32;
            let fields = &mut out[at..at + ELEMENT_SIZE];
            if self.is_leaf {
                fields[0..4].copy_from_slice(&element.flags.to_le_bytes());
                fields[4..8].copy_from_slice(&pos.to_le_bytes());
                fields[8..12].copy_from_slice(&element.key_len.to_le_bytes());
                fields[12..16].copy_from_slice(&element.value_len.to_le_bytes());
            } else {
                fields[0..4].copy_from_slice(&pos.to_le_bytes());
                fields[4..8].copy_from_slice(&element.key_len.to_le_bytes());
                fields[8..16].copy_from_slice(&element.child.to_le_bytes());
            }
            data_at += element.key_len as usize + element.value_len as usize;
        }
        assert_eq!(
            data_at,
            data_start + self.data.len(),
            "elements account for every data byte"
        );
    }

    fn clear(&mut self) {
        self.elements.clear();
        self.data.clear();
    }
}

/// A key or value length as stored; the writer asserted the limits.
fn len32(bytes: &[u8]) -> u32 {
    u32::try_from(bytes.len()).unwrap_or(u32::MAX)
}
