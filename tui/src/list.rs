//! Selection, scrolling and the cached row set of one table view.

use crate::filter::Filter;

/// Identity of a row, so the selection stays on the same worker/job/instance
/// when a refresh inserts rows above it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RowKey {
    Name(String),
    Id(u64),
}

/// State of one table view.
#[derive(Debug, Default)]
pub(crate) struct ListState {
    /// Indices into the snapshot's vector for this view, filtered and sorted.
    /// Recomputed only when the snapshot or the filter changes, never per
    /// frame, so 10,000 instances cost nothing to redraw.
    pub rows: Vec<usize>,
    /// Position in `rows` of the selected row.
    pub selected: usize,
    /// Position in `rows` of the first visible row.
    pub offset: usize,
    pub filter: Option<Filter>,
}

impl ListState {
    /// Index into the snapshot vector of the selected row.
    pub fn selected_row(&self) -> Option<usize> {
        self.rows.get(self.selected).copied()
    }

    /// Replaces the row set, selecting `keep` (a position in the new rows)
    /// when the previously selected row is still there, otherwise staying at
    /// the same position as far as the new rows allow.
    pub fn set_rows(&mut self, rows: Vec<usize>, keep: Option<usize>, height: usize) {
        self.rows = rows;
        self.selected = keep.unwrap_or(self.selected);
        self.clamp(height);
    }

    /// Moves the selection by `delta` rows (negative is up), keeping it on
    /// screen for a viewport of `height` rows.
    pub fn move_by(&mut self, delta: isize, height: usize) {
        self.selected = self.selected.saturating_add_signed(delta);
        self.clamp(height);
    }

    pub fn top(&mut self, height: usize) {
        self.selected = 0;
        self.clamp(height);
    }

    pub fn bottom(&mut self, height: usize) {
        self.selected = self.rows.len().saturating_sub(1);
        self.clamp(height);
    }

    fn clamp(&mut self, height: usize) {
        self.selected = self.selected.min(self.rows.len().saturating_sub(1));
        self.offset = scroll_offset(self.offset, self.selected, self.rows.len(), height);
    }
}

/// The first visible row for a viewport of `height` rows: the previous offset
/// moved as little as possible to show `selected`, and never leaving blank
/// lines below the last row. Used both by key handling and by rendering (which
/// may see a different height after a resize), so they always agree.
pub(crate) fn scroll_offset(offset: usize, selected: usize, len: usize, height: usize) -> usize {
    if height == 0 || len == 0 {
        return 0;
    }
    let offset = offset.min(len.saturating_sub(height));
    if selected < offset {
        selected
    } else if selected >= offset + height {
        selected + 1 - height
    } else {
        offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(len: usize) -> ListState {
        ListState {
            rows: (0..len).collect(),
            ..ListState::default()
        }
    }

    #[test]
    fn window_follows_selection_minimally() {
        assert_eq!(scroll_offset(0, 4, 100, 5), 0);
        assert_eq!(scroll_offset(0, 5, 100, 5), 1);
        assert_eq!(scroll_offset(10, 12, 100, 5), 10);
        assert_eq!(scroll_offset(10, 3, 100, 5), 3);
        // Shrinking the list pulls the window up instead of showing blanks.
        assert_eq!(scroll_offset(90, 2, 4, 5), 0);
        assert_eq!(scroll_offset(3, 0, 0, 5), 0);
        assert_eq!(scroll_offset(3, 7, 10, 0), 0);
    }

    #[test]
    fn moves_clamp_to_the_rows() {
        let mut l = list(10);
        l.move_by(-3, 4);
        assert_eq!(l.selected, 0);
        l.move_by(25, 4);
        assert_eq!((l.selected, l.offset), (9, 6));
        l.top(4);
        assert_eq!((l.selected, l.offset), (0, 0));
        l.bottom(4);
        assert_eq!(l.selected_row(), Some(9));
        l.set_rows(vec![1, 2], None, 4);
        assert_eq!((l.selected, l.offset), (1, 0));
        l.set_rows(Vec::new(), None, 4);
        assert_eq!(l.selected_row(), None);
    }
}
