//! `GET /api/recordings/{id}/download.zip`: every processed file of a recording plus its
//! `manifest.json` as one zip, written on a blocking thread into a bounded channel the response
//! body reads. Must never hold the whole zip (or a whole file) in memory, recompress media
//! (entries are stored), or serve a recording the caller may not see (the same rule as its
//! files: `access::may_see_recording` through `recording_for`).

#[allow(unused_imports)]
use super::*;

use std::io::Write;

use axum::body::{Body, Bytes};
use tokio::sync::mpsc;

/// How much of the zip is handed to the body at a time.
const CHUNK: usize = 64 * 1024;
/// Chunks waiting for a slow client, at most (the writer thread waits beyond that).
const QUEUED: usize = 8;

/// A `Write` that cuts what the zip writer writes into chunks for the response body; an error
/// once the client has gone (the thread then stops reading files).
struct ToBody {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ToBody {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

impl Write for ToBody {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Writes the zip: each `(name, path)` file as a stored entry, then the manifest's bytes.
fn write_zip(
    out: ToBody,
    files: &[(String, std::path::PathBuf)],
    manifest: &[u8],
) -> zip::result::ZipResult<()> {
    use zip::write::SimpleFileOptions;
    let mut zip = zip::ZipWriter::new_stream(out);
    for (name, path) in files {
        let mut f = std::fs::File::open(path)?;
        let size = f.metadata()?.len();
        // Stored: WebM/Matroska media is compressed already; a second pass would only cost CPU.
        let opts = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(size >= u64::from(u32::MAX));
        zip.start_file(name.as_str(), opts)?;
        std::io::copy(&mut f, &mut zip)?;
    }
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file(MANIFEST_NAME, opts)?;
    zip.write_all(manifest)?;
    let mut out = zip.finish()?.into_inner();
    out.flush()?;
    Ok(())
}

/// The manifest's entry name.
const MANIFEST_NAME: &str = "manifest.json";

#[utoipa::path(
    get, path = "/api/recordings/{id}/download.zip", params(("id" = i64, Path, description = "the recording's id")),
    responses(
        (status = 200, description = "a zip of every source file the manifest lists plus manifest.json, entries stored (not recompressed), streamed", body = Vec<u8>, content_type = "application/zip"),
        (status = 409, description = "the recording is not processed yet", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 410, description = "the retention policy deleted the recording", body = crate::problem::Problem, content_type = "application/problem+json"))
)]
pub(super) async fn recordings_zip(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let (r, _, _) = recording_for(&st, &p, &id).await?;
    let (m, manifest) = manifest_of(&st, &r).await?;
    let storage = crate::school::recording::storage(&st);
    let mut files = Vec::with_capacity(m.sources.len());
    for s in &m.sources {
        let Some(path) = storage.file(r.id, &s.file) else {
            return Err(ApiError::internal(format!(
                "recording {}: `{}` is not a file name",
                r.id, s.file
            )));
        };
        files.push((s.file.clone(), path));
    }
    let (tx, rx) = mpsc::channel(QUEUED);
    let rid = r.id;
    tokio::task::spawn_blocking(move || {
        let out = ToBody {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        if let Err(e) = write_zip(out, &files, &manifest) {
            tracing::warn!(recording = rid, "zip download cut off: {e}");
            // The body ends with an error: the client sees a cut download, never a short zip
            // that looks whole.
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let disposition = format!("attachment; filename=\"recording-{rid}.zip\"");
    let mut resp = Body::from_stream(body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    Ok(resp)
}
