//! tmem's errors.

use core::fmt;

/// Why a tmem operation failed. `E` is the backend's ([`crate::PamOps::Error`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TmemError<E> {
    /// No pool has this id (never created, or destroyed and gone).
    UnknownPool,
    /// The pool was destroyed while the operation was in flight; nothing was stored.
    PoolDestroyed,
    /// No client has this id.
    UnknownClient,
    /// The client does not own or share this pool.
    NotAMember,
    /// tmem's own metadata (tree node, object, registry entry) could not be allocated.
    NoMemory,
    /// Every id of the 32-bit id space is in use.
    IdsExhausted,
    /// The backend failed.
    Backend(E),
}

impl<E: fmt::Debug> fmt::Display for TmemError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TmemError::UnknownPool => f.write_str("unknown pool"),
            TmemError::PoolDestroyed => f.write_str("pool destroyed during the operation"),
            TmemError::UnknownClient => f.write_str("unknown client"),
            TmemError::NotAMember => f.write_str("client is not a member of this pool"),
            TmemError::NoMemory => f.write_str("out of memory for tmem metadata"),
            TmemError::IdsExhausted => f.write_str("no free id"),
            TmemError::Backend(e) => write!(f, "backend error: {e:?}"),
        }
    }
}
