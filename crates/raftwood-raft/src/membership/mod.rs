//! Membership: the persisted configuration, change requests, and the pure
//! function that turns one configuration into the next.

mod changer;
mod conf_change;
mod conf_state;

pub use changer::{Changer, ConfChangeError};
pub use conf_change::{ConfChange, ConfChangeKind, ConfChangeSingle, ConfChangeTransition};
pub use conf_state::ConfState;
