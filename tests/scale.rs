//! Scale of the admin API and the console: a server with thousands of jobs, each with queued work
//! that no worker can take (no worker runs; the jobs want a tag nobody has), created through the
//! API. Then the console's data source must load a snapshot whose no-worker banner counts every
//! stuck instance with its reason and fix (it used to vanish: counts came from the first page of
//! instances, all queued), paging through jobs and queued instances must return each exactly
//! once (also while jobs are added), and bad page parameters are refused naming the field.
//! No timing assertion: how long a page or a refresh takes at 5,000 and 15,000 jobs is a
//! benchmark figure (`shoal_bench scale`).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Server, eventually, http};
use shoal::client::console::ApiSource;
use shoal::client::{ApiClient, InstanceQuery};
use shoal::spec::{HttpSpec, JobSpec, TargetSpec};
use shoal_tui::DataSource;

const JOBS: usize = 5_000;
/// Each job's backfill of the last three hours of an hourly schedule: three queued fires.
const FIRES_PER_JOB: usize = 3;
const QUEUED: usize = JOBS * FIRES_PER_JOB;
const TAG: &str = "gpu-scale";
/// Concurrent API clients filling the server (their commits share group commits).
const CLIENTS: usize = 32;

fn job_name(n: usize) -> String {
    format!("scale-{n:05}")
}

fn job_spec(name: String) -> JobSpec {
    JobSpec {
        name,
        every: Some("1h".into()),
        http: HttpSpec {
            url: "http://127.0.0.1:9/never".into(),
            ..HttpSpec::default()
        },
        target: Some(TargetSpec {
            tags: vec![TAG.into()],
            workers: Vec::new(),
        }),
        ..JobSpec::default()
    }
}

/// Creates the jobs and queues each one's fires, through the API, `CLIENTS` requests at a time.
async fn fill(client: &ApiClient) {
    let next = Arc::new(AtomicUsize::new(0));
    let now = chrono::Utc::now();
    let backfill = serde_json::json!({
        "from": (now - chrono::Duration::hours(FIRES_PER_JOB as i64)).to_rfc3339(),
        "to": now.to_rfc3339(),
    });
    let http = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (client, next, backfill) = (client.clone(), next.clone(), backfill.clone());
        let (http, url) = (http.clone(), client.server_url().to_string());
        tasks.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= JOBS {
                    return;
                }
                let name = job_name(n);
                client.create_job(&job_spec(name.clone())).await.unwrap();
                let result: serde_json::Value = http
                    .post(format!("{url}/api/v1/jobs/{name}/backfill"))
                    .json(&backfill)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(result["count"], FIRES_PER_JOB, "fires of {name}: {result}");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

#[test]
fn thousands_of_jobs_with_queued_work_page_and_keep_the_no_worker_banner() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = ApiClient::new(&server.url, None, &Default::default()).unwrap();
    let started = std::time::Instant::now();
    runtime.block_on(fill(&client));
    eprintln!(
        "filled {JOBS} jobs and {QUEUED} queued instances in {:?}",
        started.elapsed()
    );

    // The dispatcher records why each instance waits, a bounded stretch of the queue per pass,
    // so the whole queue carries its reason within a few passes.
    let queue = eventually(
        "every queued instance to carry its no-worker reason",
        || {
            let queue = runtime.block_on(client.queue()).unwrap();
            (queue.unplaceable.queued == QUEUED as u64).then_some(queue)
        },
    );
    eprintln!("every reason recorded after {:?}", started.elapsed());
    assert_eq!(queue.queued, QUEUED as u64);
    assert_eq!(queue.queued_jobs, JOBS as u64);
    assert_eq!(queue.unplaceable.jobs, JOBS as u64);
    let by_kind = |kind: &str| queue.by_reason.iter().find(|r| r.kind == kind).unwrap();
    assert_eq!(by_kind("no-worker").queued, QUEUED as u64);
    assert!(queue.oldest.is_some());
    assert_eq!(queue.top_jobs.len(), 20);
    assert!(
        queue
            .top_jobs
            .iter()
            .all(|j| j.queued == FIRES_PER_JOB as u64)
    );

    // The console's data source: the banner is there, counting the whole queue, with the reason
    // and the command that fixes it.
    // What is checked is what it shows, not how fast: a loaded machine may take longer than the
    // console's own 2 s limit (the benchmark measures the time).
    let mut source = ApiSource::new(client.clone(), runtime.handle().clone())
        .with_refresh_timeout(std::time::Duration::from_secs(60));
    let snapshot = std::thread::scope(|scope| {
        scope
            .spawn(|| source.refresh())
            .join()
            .expect("the refresh thread")
    })
    .unwrap_or_else(|error| panic!("the console's refresh failed: {error}"));
    assert_eq!(snapshot.stats.queued, QUEUED as u32, "header count");
    assert_eq!(snapshot.unplaceable_totals.queued, QUEUED as u64);
    assert_eq!(snapshot.unplaceable_totals.jobs, JOBS as u64);
    assert!(!snapshot.unplaceable.is_empty(), "the banner is gone");
    for stuck in &snapshot.unplaceable {
        assert_eq!(stuck.queued, FIRES_PER_JOB as u32, "{stuck:?}");
        assert!(
            stuck.reason.contains("no live worker"),
            "the reason: {}",
            stuck.reason
        );
        assert!(
            stuck.fix.starts_with("shoal worker --join") && stuck.fix.ends_with(TAG),
            "the fix: {}",
            stuck.fix
        );
    }
    assert_eq!(snapshot.jobs.len(), JOBS, "every job in the jobs view");
    assert!(
        snapshot
            .jobs
            .iter()
            .all(|j| j.queued == FIRES_PER_JOB as u32)
    );

    // Paging through the jobs returns each once, a job created meanwhile included (at the end).
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = runtime
            .block_on(client.jobs_page(after.as_deref(), Some(777)))
            .unwrap();
        assert!(page.items.len() <= 777);
        for summary in page.items.iter().filter(|s| s.job.def.name != "scale-late") {
            assert_eq!(
                summary.queued, FIRES_PER_JOB as u32,
                "{}",
                summary.job.def.name
            );
            assert_eq!(summary.running, 0);
        }
        seen.extend(page.items.into_iter().map(|s| s.job.def.name));
        if after.is_none() {
            runtime
                .block_on(client.create_job(&job_spec("scale-late".into())))
                .unwrap();
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut expected: Vec<String> = (0..JOBS).map(job_name).collect();
    expected.push("scale-late".into());
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a job listed twice");
    assert_eq!(
        unique,
        expected.iter().collect::<BTreeSet<_>>(),
        "every job, once"
    );
    // The CLI pages through them all as well.
    let listed = server.cli_json(&["job", "list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(JOBS + 1));

    // Paging through the queued instances, newest first, returns each once.
    let query = InstanceQuery {
        state: Some("queued".into()),
        limit: Some(4_000),
        ..InstanceQuery::default()
    };
    let mut ids = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = runtime
            .block_on(client.instances_page(&query, before.as_deref()))
            .unwrap();
        ids.extend(page.items.iter().map(|v| v.instance.id));
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(ids.len(), QUEUED);
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest first, once each"
    );

    // Bad page parameters are refused, naming the field.
    for (path, field) in [
        ("/api/v1/jobs?limit=0", "limit"),
        ("/api/v1/jobs?limit=5001", "limit"),
        ("/api/v1/jobs?after=abc", "after"),
        ("/api/v1/jobs?cursor=1", "cursor"),
        ("/api/v1/instances?limit=10001", "limit"),
        ("/api/v1/instances?before=-1", "before"),
    ] {
        let (status, body) = http(server.api, "GET", path, None).expect("an answer");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (status, body["field"].as_str()),
            (422, Some(field)),
            "{path}: {body}"
        );
    }
}
