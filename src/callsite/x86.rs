//! Call-site analysis for x86 code (placeholder until the backend lands).

use super::CallSite;
use crate::model::Image;

/// Finds pool-API call sites in x86 code.
pub(super) fn analyze(_image: &Image, _data: &[u8]) -> Vec<CallSite> {
    Vec::new()
}
