//! Lesson observation (听评课): rubrics as versioned data, observations of a lesson by an
//! observer (rubric scores, time-stamped comments, S-T and FIAS codes), the S-T and FIAS
//! analyses, and their API. Sits above `school` (it reads lessons and the organisation tree
//! through it); `school` must never import it, and nothing here touches the media path.

pub mod codes;
pub mod fias;
pub mod inspect;
pub mod inspect_store;
pub mod rubric;
pub mod st;

// Teacher records (教师数字档案) and micro-ability evidence (issue 21 item 5).
pub mod records;
// The automatic S-T draft from the recorded teacher's voice.
pub mod stdraft;
// The S-T draft as a background job (its table, runner and the stored draft).
pub mod stdraft_job;
pub mod store;
pub mod views;

pub(crate) mod api;

#[cfg(test)]
mod analysis_tests;

/// Every observation API route as (method, path template): what the role × route × object
/// matrix test checks it covers.
pub fn routes() -> Vec<(&'static str, &'static str)> {
    api::ROUTES.iter().map(|r| (r.method, r.path)).collect()
}
