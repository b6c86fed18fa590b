//! Teacher records (教师数字档案): one record per teacher and term, built from what the system
//! observed (lessons taught as hub or assisting teacher, recordings, submitted observations'
//! rubric, S-T and FIAS results) plus micro-ability (微能力点) evidence and its grades, each
//! figure carrying the ids and URLs of the rows it came from; its API, CSV export and the
//! evidence files. Must never store a figure it can compute (a point's grade, a total, a
//! mean), and never show a draft observation as a result.

pub mod export;
pub mod grading;
pub mod points;
pub mod record;
pub mod store;

pub(crate) mod api;

/// Every record API route as (method, path template): what the role × route × object matrix
/// test checks it covers.
pub fn routes() -> Vec<(&'static str, &'static str)> {
    api::ROUTES.iter().map(|r| (r.method, r.path)).collect()
}
