//! Starting and stopping the two emulators inside the caller's tokio runtime.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_config::SdkConfig;
use dynoxide::Database;
use ferrokinesis::store::{DurableStateOptions, StoreOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::LocalAwsError;
use crate::options::LocalAwsOptions;
use crate::sdk::{self, ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY};

/// How long [`LocalAws::shutdown`] lets open requests finish before it stops
/// waiting. Requests here take milliseconds; only a streaming call such as
/// SubscribeToShard can run longer, and it should not hold a test hostage.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Kinesis state lives in this subdirectory of the data directory.
const KINESIS_DIR: &str = "kinesis";

/// DynamoDB state lives in this SQLite file inside the data directory.
const DYNAMODB_FILE: &str = "dynamodb.sqlite";

/// Seconds between Kinesis snapshots when state is on disk: as often as the
/// emulator allows.
///
/// The emulator appends a full copy of its state (every retained record) to
/// its log on every change, and only a snapshot truncates the log. With its
/// default of 30 s the log reached 900 MB after 1,500 single-record puts;
/// snapshotting every second bounds it to about one second of changes. Each
/// change still costs a write proportional to the retained records.
const KINESIS_SNAPSHOT_INTERVAL_SECS: u64 = 1;

/// Held (with an exclusive lock) while an instance uses the data directory.
const LOCK_FILE: &str = "local-aws.lock";

/// A running Kinesis and DynamoDB, each on its own 127.0.0.1 port.
///
/// Start it with [`LocalAws::start`], stop it with [`LocalAws::shutdown`].
/// Dropping it also stops both servers (they notice the drop and shut down in
/// the background), so a panicking test does not leak listeners; call
/// `shutdown` when you need to know that they have stopped, for example
/// before starting again on the same data directory.
#[derive(Debug)]
pub struct LocalAws {
    /// Where the Kinesis API listens; kept to build its endpoint URL.
    kinesis_addr: SocketAddr,
    /// Where the DynamoDB API listens; kept to build its endpoint URL.
    dynamodb_addr: SocketAddr,
    /// Built once so that every client shares one HTTP connection pool.
    sdk_config: SdkConfig,
    /// Sending on it, or dropping it, tells both servers to stop.
    stop: watch::Sender<()>,
    /// The Kinesis server task; awaited on shutdown to report its errors.
    kinesis_server: JoinHandle<std::io::Result<()>>,
    /// The DynamoDB server task; awaited on shutdown to report its errors.
    dynamodb_server: JoinHandle<Result<(), String>>,
    /// The data directory, if state is kept on disk; reported to users.
    data_dir: Option<PathBuf>,
    /// Keeps other instances out of the data directory until we stop: the
    /// lock is released when the file is closed.
    data_dir_lock: Option<File>,
}

impl LocalAws {
    /// Starts both emulators on 127.0.0.1 and returns once they accept
    /// connections.
    ///
    /// Must be called inside a tokio runtime; the servers run as tasks on it
    /// and stop when the runtime does. Fails if a requested port is taken,
    /// if the data directory is unusable or already in use, or if saved state
    /// cannot be read.
    pub async fn start(options: LocalAwsOptions) -> Result<Self, LocalAwsError> {
        let data_dir_lock = options.data_dir.as_deref().map(lock_data_dir).transpose()?;

        let kinesis_listener = bind("kinesis", options.kinesis_port).await?;
        let dynamodb_listener = bind("dynamodb", options.dynamodb_port).await?;
        let kinesis_addr = local_addr("kinesis", &kinesis_listener, options.kinesis_port)?;
        let dynamodb_addr = local_addr("dynamodb", &dynamodb_listener, options.dynamodb_port)?;

        let (kinesis_app, kinesis_store) = ferrokinesis::create_app(store_options(&options));
        // A durable store that failed to replay its log does not fail
        // construction; it reports itself unhealthy and refuses requests.
        if let Err(err) = kinesis_store.check_ready() {
            return Err(LocalAwsError::KinesisState {
                path: kinesis_state_dir(options.data_dir.as_deref()),
                detail: err.to_string(),
            });
        }
        let database = open_database(options.data_dir.as_deref())?;

        let (stop, _) = watch::channel(());
        let kinesis_stopped = stopped(stop.subscribe());
        let kinesis_server = tokio::spawn(async move {
            axum::serve(kinesis_listener, kinesis_app)
                .with_graceful_shutdown(kinesis_stopped)
                .await
        });
        let dynamodb_server = tokio::spawn(dynoxide::server::serve_with_shutdown(
            dynamodb_listener,
            database,
            stopped(stop.subscribe()),
        ));

        let kinesis_endpoint = endpoint(kinesis_addr);
        let dynamodb_endpoint = endpoint(dynamodb_addr);
        tracing::info!(%kinesis_endpoint, %dynamodb_endpoint, data_dir = ?options.data_dir, "local aws started");
        Ok(Self {
            kinesis_addr,
            dynamodb_addr,
            sdk_config: sdk::sdk_config(kinesis_endpoint, dynamodb_endpoint),
            stop,
            kinesis_server,
            dynamodb_server,
            data_dir: options.data_dir,
            data_dir_lock,
        })
    }

    /// The Kinesis endpoint URL, `http://127.0.0.1:PORT`.
    pub fn kinesis_endpoint(&self) -> String {
        endpoint(self.kinesis_addr)
    }

    /// The DynamoDB endpoint URL, `http://127.0.0.1:PORT`.
    pub fn dynamodb_endpoint(&self) -> String {
        endpoint(self.dynamodb_addr)
    }

    /// The region clients are configured with and ARNs are built in.
    pub fn region(&self) -> &'static str {
        REGION
    }

    /// Where state is kept on disk, or `None` when everything is in memory.
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }

    /// SDK configuration for the local backend: static test credentials, the
    /// fixed region, and per-service endpoints.
    ///
    /// Code under test can build any client from it the way production code
    /// does (`aws_sdk_kinesis::Client::new(local.sdk_config())`) and reach the
    /// right emulator, without the SDK reading anything from the host.
    pub fn sdk_config(&self) -> &SdkConfig {
        &self.sdk_config
    }

    /// A Kinesis client for the local Kinesis.
    pub fn kinesis_client(&self) -> aws_sdk_kinesis::Client {
        aws_sdk_kinesis::Client::new(&self.sdk_config)
    }

    /// A DynamoDB client for the local DynamoDB.
    pub fn dynamodb_client(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk_config)
    }

    /// Environment variables that point AWS tools (the aws CLI, any SDK, our
    /// own binaries) at this instance, as `(name, value)` pairs for setting on
    /// a child process.
    ///
    /// Uses the service-specific endpoint variables, so that other services
    /// (for example a moto control plane) can be pointed elsewhere.
    /// `AWS_DEFAULT_REGION` is there too because aws CLI v1 ignores
    /// `AWS_REGION`.
    pub fn env_vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL_KINESIS", self.kinesis_endpoint()),
            ("AWS_ENDPOINT_URL_DYNAMODB", self.dynamodb_endpoint()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_DEFAULT_REGION", REGION.to_owned()),
        ]
    }

    /// [`Self::env_vars`] as `NAME=value` lines, for printing or for a
    /// dotenv file.
    pub fn env_lines(&self) -> Vec<String> {
        self.env_vars()
            .into_iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect()
    }

    /// Stops both servers and waits until they have stopped.
    ///
    /// Open requests get a few seconds to finish. Nothing needs flushing:
    /// Kinesis appends every change to its log with fsync before answering,
    /// and DynamoDB commits every write to SQLite. Returns an error if a
    /// server had failed or panicked.
    pub async fn shutdown(self) -> Result<(), LocalAwsError> {
        let Self {
            stop,
            kinesis_server,
            dynamodb_server,
            data_dir_lock,
            ..
        } = self;
        // Receivers see the sender go away as the stop signal.
        drop(stop);
        let kinesis = finish("kinesis", kinesis_server, |result| {
            result.map_err(|err| err.to_string())
        })
        .await;
        let dynamodb = finish("dynamodb", dynamodb_server, |result| result).await;
        // Only now may another instance take over the directory.
        drop(data_dir_lock);
        tracing::info!("local aws stopped");
        kinesis.and(dynamodb)
    }
}

/// Resolves when the stop signal is sent or its sender is dropped.
async fn stopped(mut stop: watch::Receiver<()>) {
    // Err means the sender was dropped, which also means stop.
    let _ = stop.changed().await;
}

/// Waits, a bounded time, for a server task to end and reports how it ended.
async fn finish<T>(
    service: &'static str,
    mut server: JoinHandle<T>,
    outcome: impl FnOnce(T) -> Result<(), String>,
) -> Result<(), LocalAwsError> {
    match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
        Ok(Ok(result)) => {
            outcome(result).map_err(|detail| LocalAwsError::Serve { service, detail })
        }
        Ok(Err(join_error)) => Err(LocalAwsError::Serve {
            service,
            detail: join_error.to_string(),
        }),
        Err(_) => {
            tracing::warn!(
                service,
                grace = ?SHUTDOWN_GRACE,
                "requests still open at shutdown; stopping the server without them"
            );
            server.abort();
            Ok(())
        }
    }
}

/// Opens a listener on 127.0.0.1 only: the emulators check no signatures, so
/// they must not be reachable from other machines.
async fn bind(service: &'static str, port: u16) -> Result<TcpListener, LocalAwsError> {
    TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|source| LocalAwsError::Bind {
            service,
            port,
            source,
        })
}

fn local_addr(
    service: &'static str,
    listener: &TcpListener,
    port: u16,
) -> Result<SocketAddr, LocalAwsError> {
    listener.local_addr().map_err(|source| LocalAwsError::Bind {
        service,
        port,
        source,
    })
}

fn endpoint(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// Creates the data directory and takes its lock, failing fast if another
/// instance (in this or another process) already holds it.
fn lock_data_dir(dir: &Path) -> Result<File, LocalAwsError> {
    let data_dir_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LocalAwsError::DataDir { path, source }
    };
    std::fs::create_dir_all(dir).map_err(data_dir_error(dir))?;
    let lock_path = dir.join(LOCK_FILE);
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(data_dir_error(&lock_path))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(LocalAwsError::DataDirLocked {
            path: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(data_dir_error(&lock_path)(source)),
    }
}

fn kinesis_state_dir(data_dir: Option<&Path>) -> PathBuf {
    data_dir.map_or_else(|| PathBuf::from(":memory:"), |dir| dir.join(KINESIS_DIR))
}

fn store_options(options: &LocalAwsOptions) -> StoreOptions {
    let delay_ms = u64::try_from(options.stream_transition_delay.as_millis()).unwrap_or(u64::MAX);
    StoreOptions {
        create_stream_ms: delay_ms,
        delete_stream_ms: delay_ms,
        update_stream_ms: delay_ms,
        shard_limit: options.shard_limit,
        iterator_ttl_seconds: options.iterator_ttl_seconds,
        subscribe_to_shard_session_ms: u64::try_from(options.subscription_length.as_millis())
            .unwrap_or(u64::MAX),
        enforce_limits: options.enforce_limits,
        durable: options.data_dir.as_ref().map(|dir| DurableStateOptions {
            state_dir: dir.join(KINESIS_DIR),
            snapshot_interval_secs: KINESIS_SNAPSHOT_INTERVAL_SECS,
            max_retained_bytes: None,
        }),
        aws_region: REGION.to_owned(),
        ..StoreOptions::default()
    }
}

fn open_database(data_dir: Option<&Path>) -> Result<Database, LocalAwsError> {
    let Some(dir) = data_dir else {
        return Database::memory().map_err(|err| LocalAwsError::DynamoDbState {
            path: PathBuf::from(":memory:"),
            detail: err.to_string(),
        });
    };
    let path = dir.join(DYNAMODB_FILE);
    let Some(path_str) = path.to_str() else {
        return Err(LocalAwsError::DynamoDbState {
            path,
            detail: "the path is not valid UTF-8".to_owned(),
        });
    };
    Database::new(path_str).map_err(|err| LocalAwsError::DynamoDbState {
        detail: err.to_string(),
        path,
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;
    use aws_sdk_kinesis::primitives::Blob;
    use aws_sdk_kinesis::types::ShardIteratorType;

    use super::*;
    use crate::testing::{bounded, started};
    use crate::{KeyAttribute, TableSpec, ensure_stream, ensure_table};

    /// A temporary directory, and options that keep the state in it.
    fn kept() -> (tempfile::TempDir, LocalAwsOptions) {
        let dir = tempfile::tempdir().unwrap();
        let options = LocalAwsOptions {
            data_dir: Some(dir.path().to_path_buf()),
            ..LocalAwsOptions::default()
        };
        (dir, options)
    }

    fn table_spec() -> TableSpec {
        TableSpec {
            name: "Rides".to_owned(),
            partition_key: KeyAttribute::string("Unicorn"),
            sort_key: Some(KeyAttribute::number("At")),
            indexes: Vec::new(),
        }
    }

    #[tokio::test]
    async fn in_memory_instance_serves_both_apis_and_stops() {
        bounded(async {
            let local = started().await;
            assert!(local.kinesis_endpoint().starts_with("http://127.0.0.1:"));
            assert_ne!(local.kinesis_endpoint(), local.dynamodb_endpoint());
            assert_eq!(local.data_dir(), None);

            let streams = local.kinesis_client().list_streams().send().await.unwrap();
            assert!(streams.stream_names().is_empty());
            let tables = local.dynamodb_client().list_tables().send().await.unwrap();
            assert!(tables.table_names().is_empty());

            local.shutdown().await.unwrap();
        })
        .await;
    }

    #[tokio::test]
    async fn file_backed_state_survives_a_restart() {
        bounded(async {
            let (_dir, options) = kept();

            let first = LocalAws::start(options.clone()).await.unwrap();
            let kinesis = first.kinesis_client();
            let dynamodb = first.dynamodb_client();
            ensure_stream(&kinesis, "rides", 1).await.unwrap();
            ensure_table(&dynamodb, &table_spec()).await.unwrap();
            kinesis
                .put_record()
                .stream_name("rides")
                .partition_key("Shadowfax")
                .data(Blob::new("kept"))
                .send()
                .await
                .unwrap();
            dynamodb
                .put_item()
                .table_name("Rides")
                .item("Unicorn", AttributeValue::S("Shadowfax".to_owned()))
                .item("At", AttributeValue::N("1".to_owned()))
                .send()
                .await
                .unwrap();
            first.shutdown().await.unwrap();

            let second = LocalAws::start(options).await.unwrap();
            let kinesis = second.kinesis_client();
            let dynamodb = second.dynamodb_client();
            let streams = kinesis.list_streams().send().await.unwrap();
            assert_eq!(streams.stream_names(), ["rides"]);
            let tables = dynamodb.list_tables().send().await.unwrap();
            assert_eq!(tables.table_names(), ["Rides"]);

            let shards = kinesis
                .list_shards()
                .stream_name("rides")
                .send()
                .await
                .unwrap();
            let iterator = kinesis
                .get_shard_iterator()
                .stream_name("rides")
                .shard_id(shards.shards()[0].shard_id())
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .unwrap();
            let records = kinesis
                .get_records()
                .shard_iterator(iterator.shard_iterator().unwrap())
                .send()
                .await
                .unwrap();
            assert_eq!(records.records().len(), 1);
            assert_eq!(records.records()[0].data().as_ref(), b"kept");

            let items = dynamodb.scan().table_name("Rides").send().await.unwrap();
            assert_eq!(items.count(), 1);

            // Provisioning again finds both and leaves them alone.
            ensure_stream(&kinesis, "rides", 1).await.unwrap();
            ensure_table(&dynamodb, &table_spec()).await.unwrap();
            second.shutdown().await.unwrap();
        })
        .await;
    }

    #[tokio::test]
    async fn a_data_dir_in_use_is_refused_until_released() {
        bounded(async {
            let (dir, options) = kept();
            let first = LocalAws::start(options.clone()).await.unwrap();

            let refused = LocalAws::start(options.clone()).await.unwrap_err();
            assert!(
                matches!(&refused, LocalAwsError::DataDirLocked { path } if path == dir.path()),
                "{refused:?}"
            );

            first.shutdown().await.unwrap();
            LocalAws::start(options)
                .await
                .unwrap()
                .shutdown()
                .await
                .unwrap();
        })
        .await;
    }

    #[tokio::test]
    async fn unreadable_kinesis_state_fails_the_start() {
        bounded(async {
            let (dir, options) = kept();
            std::fs::create_dir_all(dir.path().join(KINESIS_DIR)).unwrap();
            std::fs::write(dir.path().join(KINESIS_DIR).join("wal.log"), "not a log").unwrap();
            let err = LocalAws::start(options).await.unwrap_err();
            assert!(
                matches!(&err, LocalAwsError::KinesisState { path, .. } if path.ends_with(KINESIS_DIR)),
                "{err:?}"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_taken_port_is_reported_with_its_service() {
        bounded(async {
            let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = taken.local_addr().unwrap().port();
            let options = LocalAwsOptions {
                dynamodb_port: port,
                ..LocalAwsOptions::default()
            };
            let err = LocalAws::start(options).await.unwrap_err();
            assert!(
                matches!(err, LocalAwsError::Bind { service: "dynamodb", port: p, .. } if p == port),
                "{err:?}"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn sdk_config_and_env_point_at_the_instance() {
        bounded(async {
            let local = started().await;
            let config = local.sdk_config();
            assert_eq!(config.region().map(|r| r.as_ref()), Some(REGION));

            // A client built the way production code builds one reaches the
            // local Kinesis, not AWS.
            let kinesis = aws_sdk_kinesis::Client::new(config);
            ensure_stream(&kinesis, "from-config", 1).await.unwrap();
            let streams = local.kinesis_client().list_streams().send().await.unwrap();
            assert_eq!(streams.stream_names(), ["from-config"]);

            let lines = local.env_lines();
            assert!(lines.contains(&format!(
                "AWS_ENDPOINT_URL_KINESIS={}",
                local.kinesis_endpoint()
            )));
            assert!(lines.contains(&format!(
                "AWS_ENDPOINT_URL_DYNAMODB={}",
                local.dynamodb_endpoint()
            )));
            assert!(lines.contains(&"AWS_REGION=us-east-1".to_owned()));
            local.shutdown().await.unwrap();
        })
        .await;
    }

    #[tokio::test]
    async fn dropping_the_instance_stops_both_servers() {
        bounded(async {
            let local = started().await;
            let addrs = [local.kinesis_addr, local.dynamodb_addr];
            drop(local);
            // The servers stop in the background; wait (bounded by the test
            // timeout) until neither accepts connections any more.
            for addr in addrs {
                while tokio::net::TcpStream::connect(addr).await.is_ok() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
        .await;
    }
}
