//! `cargo xtask deploy` and `destroy` against moto's server: the stack of
//! `infra/wildrydes.yaml` is created with every resource as specified (read
//! back through each service's API), a second deploy changes nothing, a new
//! batch size updates the trigger in place, a dry run changes nothing, and
//! destroy keeps the data tables unless told otherwise.
//!
//! moto comes from `cargo xtask test`, which installs the pinned Python
//! tools and names their folder in `WILDRYDES_TOOLS_BIN`. Each test starts
//! its own moto server on a free port.
//!
//! moto cannot run Lambda code, so the tests deploy placeholder zips (a
//! `bootstrap` shell script that exits with an error) through deploy's
//! `--skip-build --artifacts DIR` path, the one CI uses for zips built
//! elsewhere: building the three release binaries with cargo-lambda would
//! take minutes per run.
//!
//! What moto does not model is checked in the template CloudFormation holds
//! for the stack (GetTemplate): its CloudFormation ignores `StreamEncryption`
//! on streams and `SSESpecification` / `PointInTimeRecoverySpecification` /
//! `TimeToLiveSpecification` on tables, so their service APIs would not show
//! them; and the aggregator's schedule rule is read there too (its
//! permission to invoke the function is read back from Lambda), as these
//! tests have no EventBridge client. moto's CloudFormation skips
//! `AWS::CloudWatch::Alarm` (it creates none), so the pipeline's alarms are
//! read in the template by wildrydes-ops's tests; the dashboard is created.

// Test code: a panic is how a failure is reported (clippy.toml allows
// unwrap in #[test] functions; this extends it to their helpers).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::types::QueueAttributeName;
use wildrydes_local_aws::{REGION, static_sdk_config};
use wildrydes_ops::deploy::{DeployOptions, DeployReport, Outcome, Settings, deploy};
use wildrydes_ops::destroy::{DestroyOptions, destroy};
use wildrydes_ops::template::FUNCTIONS;
use wildrydes_testkit::moto::{ACCOUNT, Moto};
use wildrydes_testkit::{bounded, free_port};

const STACK: &str = "wildrydes";

// ---- deploy's inputs ----------------------------------------------------------

/// Placeholder zips laid out as cargo-lambda writes them: a `bootstrap`
/// script that says what it is and fails (moto never runs it). `tag` makes
/// the bytes, hence the keys, differ between calls.
fn placeholder_zips(dir: &Path, tag: &str) {
    for function in FUNCTIONS {
        let path = wildrydes_ops::artifacts::zip_path(dir, function.binary);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .unix_permissions(0o755);
        zip.start_file("bootstrap", options).unwrap();
        write!(
            zip,
            "#!/bin/sh\n# {} {tag}: a test placeholder, not the function\nexit 1\n",
            function.binary
        )
        .unwrap();
        zip.finish().unwrap();
    }
}

fn options(lambda_dir: &Path, settings: Settings) -> DeployOptions {
    DeployOptions {
        stack_name: STACK.to_owned(),
        settings,
        bucket: None,
        lambda_dir: lambda_dir.to_owned(),
        dry_run: false,
        timeout: Duration::from_secs(30),
    }
}

/// What each test deploys into and from: moto (with the managed IAM
/// policies CloudFormation attaches), and placeholder zips tagged `v1` in a
/// folder of their own.
struct Sandbox {
    moto: Moto,
    zips: tempfile::TempDir,
}

impl Sandbox {
    async fn start() -> Self {
        let moto = Moto::start_with_managed_policies().await;
        let zips = tempfile::tempdir().unwrap();
        placeholder_zips(zips.path(), "v1");
        Self { moto, zips }
    }

    fn config(&self) -> &SdkConfig {
        &self.moto.config
    }

    /// deploy's options for the zips, with `settings`.
    fn options(&self, settings: Settings) -> DeployOptions {
        options(self.zips.path(), settings)
    }

    /// Deploys the zips with `settings`, which must succeed.
    async fn deploy(&self, settings: Settings) -> DeployReport {
        deploy(self.config(), &self.options(settings))
            .await
            .unwrap()
    }
}

fn destroy_options(delete_data: bool) -> DestroyOptions {
    DestroyOptions {
        stack_name: STACK.to_owned(),
        delete_data,
        timeout: Duration::from_secs(30),
    }
}

// ---- reading back ---------------------------------------------------------------

/// An S3 client as deploy makes one (path-style addressing, which moto
/// needs).
fn xtask_s3(config: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    )
}

/// Every event CloudFormation recorded for the stack.
async fn stack_event_count(config: &SdkConfig) -> usize {
    let cfn = aws_sdk_cloudformation::Client::new(config);
    let mut pages = cfn
        .describe_stack_events()
        .stack_name(STACK)
        .into_paginator()
        .send();
    let mut count = 0;
    while let Some(page) = pages.next().await {
        count += page.unwrap().stack_events().len();
    }
    count
}

async fn stack_status(config: &SdkConfig) -> Option<String> {
    let cfn = aws_sdk_cloudformation::Client::new(config);
    match cfn.describe_stacks().stack_name(STACK).send().await {
        Ok(answer) => answer.stacks()[0]
            .stack_status()
            .map(|s| s.as_str().to_owned()),
        Err(_) => None,
    }
}

/// The stack's physical resource ids by logical id.
async fn physical_ids(config: &SdkConfig) -> BTreeMap<String, String> {
    let cfn = aws_sdk_cloudformation::Client::new(config);
    let answer = cfn
        .list_stack_resources()
        .stack_name(STACK)
        .send()
        .await
        .unwrap();
    answer
        .stack_resource_summaries()
        .iter()
        .map(|r| {
            (
                r.logical_resource_id().unwrap().to_owned(),
                r.physical_resource_id().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The trigger of `function`: its only event source mapping.
async fn trigger(
    config: &SdkConfig,
    function: &str,
) -> aws_sdk_lambda::types::EventSourceMappingConfiguration {
    let lambda = aws_sdk_lambda::Client::new(config);
    let mappings = lambda
        .list_event_source_mappings()
        .function_name(function)
        .send()
        .await
        .unwrap();
    assert_eq!(mappings.event_source_mappings().len(), 1, "{function}");
    mappings.event_source_mappings()[0].clone()
}

async fn table_exists(config: &SdkConfig, name: &str) -> bool {
    aws_sdk_dynamodb::Client::new(config)
        .describe_table()
        .table_name(name)
        .send()
        .await
        .is_ok()
}

/// IAM returns policy documents URL-encoded (RFC 3986).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// A policy document as IAM returns it: URL-encoded JSON. moto 5.2.5 returns
/// those CloudFormation made as the repr of a Python dict instead
/// (`{'Version': '2012-10-17', ...}`); their strings hold no quotes, so
/// swapping the quote characters makes it JSON, and the `None` that stands
/// for a statement left out by `AWS::NoValue` becomes `null`.
fn policy_json(raw: &str) -> serde_json::Value {
    let decoded = percent_decode(raw);
    let json = if decoded.starts_with("{'") {
        decoded
            .replace('\'', "\"")
            .replace(": None", ": null")
            .replace(", None", ", null")
            .replace("[None", "[null")
    } else {
        decoded
    };
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("not a policy ({e}): {json}"))
}

/// What a role's policies allow, as (action, resource) pairs: every inline
/// policy's Allow statements, flattened. Asserts the role has no managed
/// policy and no Deny or condition (which the pairs would not show).
async fn allowed(config: &SdkConfig, role: &str) -> BTreeSet<(String, String)> {
    let iam = aws_sdk_iam::Client::new(config);
    let attached = iam
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap();
    assert!(
        attached.attached_policies().is_empty(),
        "{role} has managed policies"
    );
    let names = iam
        .list_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap();
    assert!(
        !names.policy_names().is_empty(),
        "{role} has no inline policy"
    );
    let mut pairs = BTreeSet::new();
    for name in names.policy_names() {
        let policy = iam
            .get_role_policy()
            .role_name(role)
            .policy_name(name)
            .send()
            .await
            .unwrap();
        let document = policy_json(policy.policy_document());
        let statements = match &document["Statement"] {
            serde_json::Value::Array(all) => all.clone(),
            one => vec![one.clone()],
        };
        // A statement `!If [cond, ..., !Ref AWS::NoValue]` left out: AWS
        // drops it from the list, moto 5.2.5 keeps it as null.
        for statement in statements.into_iter().filter(|s| !s.is_null()) {
            assert_eq!(statement["Effect"], "Allow", "{statement}");
            assert!(statement.get("Condition").is_none(), "{statement}");
            let strings = |value: &serde_json::Value| -> Vec<String> {
                match value {
                    serde_json::Value::String(one) => vec![one.clone()],
                    serde_json::Value::Array(all) => {
                        all.iter().map(|v| v.as_str().unwrap().to_owned()).collect()
                    }
                    other => panic!("not a string or a list: {other}"),
                }
            };
            for action in strings(&statement["Action"]) {
                for resource in strings(&statement["Resource"]) {
                    pairs.insert((action.clone(), resource));
                }
            }
        }
    }
    pairs
}

/// `actions` on each of `resources`.
fn grant(actions: &[&str], resources: &[&str]) -> BTreeSet<(String, String)> {
    actions
        .iter()
        .flat_map(|a| resources.iter().map(|r| (a.to_string(), r.to_string())))
        .collect()
}

/// What every function may do: write its logs and read its stream.
fn logs_and_read(function: &str, stream_arn: &str) -> BTreeSet<(String, String)> {
    let log_group = format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{function}:*");
    let mut pairs = grant(
        &["logs:CreateLogStream", "logs:PutLogEvents"],
        &[&log_group],
    );
    pairs.extend(grant(
        &[
            "kinesis:DescribeStream",
            "kinesis:DescribeStreamSummary",
            "kinesis:GetRecords",
            "kinesis:GetShardIterator",
            "kinesis:ListShards",
        ],
        &[stream_arn],
    ));
    pairs
}

/// No wildcard action anywhere, and a wildcard resource only as the `:*`
/// that ends a log group's ARN (its log streams; documented in the template).
fn assert_no_wildcards(role: &str, pairs: &BTreeSet<(String, String)>) {
    for (action, resource) in pairs {
        assert!(!action.contains('*'), "{role}: wildcard action {action}");
        if resource.contains('*') {
            assert!(
                resource.starts_with(&format!(
                    "arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/"
                )) && resource.ends_with(":*")
                    && resource.matches('*').count() == 1,
                "{role}: wildcard resource {resource} for {action}"
            );
        }
    }
}

// ---- the tests --------------------------------------------------------------------

#[tokio::test]
async fn a_deploy_creates_every_resource_with_the_specified_settings() {
    bounded(async {
        let sandbox = Sandbox::start().await;
        let config = sandbox.config();
        let settings = Settings {
            operator_email: Some("ops@example.com".into()),
            batch_size: 250,
            batching_window_secs: 5,
            ..Settings::default()
        };
        let report = sandbox.deploy(settings).await;
        assert_eq!(report.outcome, Outcome::Created);
        assert!(!report.events.is_empty(), "no stack events were shown");
        assert_eq!(report.bucket, format!("wildrydes-artifacts-{ACCOUNT}-{REGION}"));
        assert_eq!(report.uploaded.len(), 3);
        assert_eq!(stack_status(config).await.as_deref(), Some("CREATE_COMPLETE"));
        let ids = physical_ids(config).await;

        // The outputs deploy prints are the stack's. moto 5.2.5 computes no
        // outputs for a stack made through change sets (its
        // execute_change_set never rebuilds them), so here they are empty
        // and the template is checked to declare them instead.
        let cfn = aws_sdk_cloudformation::Client::new(config);
        let described = cfn.describe_stacks().stack_name(STACK).send().await.unwrap();
        let outputs: BTreeMap<String, String> = described.stacks()[0]
            .outputs()
            .iter()
            .map(|o| {
                (
                    o.output_key().unwrap().to_owned(),
                    o.output_value().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(report.outputs, outputs);
        let held = cfn.get_template().stack_name(STACK).send().await.unwrap();
        let body = held.template_body().unwrap();
        assert_eq!(body, wildrydes_ops::template::TEMPLATE);
        let declared = &body[body.find("\nOutputs:\n").unwrap()..];
        for key in [
            "ReadingsStreamName",
            "ReadingsStreamArn",
            "AggregatesStreamName",
            "AggregatesStreamArn",
            "SensorTableName",
            "RejectsTableName",
            "AggregatorStateTableName",
            "AlarmStateTableName",
            "AlarmHistoryTableName",
            "AlarmTopicArn",
            "StreamProcessorFunctionName",
            "AggregatorFunctionName",
            "AlarmFunctionName",
            "FailureQueueUrl",
        ] {
            assert!(declared.contains(&format!("\n  {key}:\n")), "output {key} missing");
        }

        // The zips, under content-addressed keys.
        let s3 = xtask_s3(config);
        for key in &report.uploaded {
            assert!(key.starts_with("lambda/wildrydes-") && key.ends_with(".zip"));
            s3.head_object().bucket(&report.bucket).key(key).send().await.unwrap();
        }

        // Streams.
        let kinesis = aws_sdk_kinesis::Client::new(config);
        let mut stream_arns = BTreeMap::new();
        for (logical_id, name) in [
            ("ReadingsStream", "wildrydes"),
            ("AggregatesStream", "wildrydes-aggregated"),
        ] {
            assert_eq!(ids[logical_id], name);
            let summary = kinesis
                .describe_stream_summary()
                .stream_name(name)
                .send()
                .await
                .unwrap();
            let summary = summary.stream_description_summary().unwrap();
            assert_eq!(summary.open_shard_count(), 1);
            assert_eq!(summary.retention_period_hours(), 24);
            stream_arns.insert(name, summary.stream_arn().to_owned());
        }
        let readings_arn = stream_arns["wildrydes"].as_str();
        let aggregates_arn = stream_arns["wildrydes-aggregated"].as_str();

        // Tables: keys, types, billing.
        let dynamodb = aws_sdk_dynamodb::Client::new(config);
        let mut table_arns = BTreeMap::new();
        for (name, keys) in [
            ("UnicornSensorData", vec![("Name", "S", "HASH"), ("StatusTime", "N", "RANGE")]),
            ("UnicornSensorDataRejects", vec![("RecordId", "S", "HASH")]),
            (
                "WildRydesAggregatorMinutes",
                vec![("Unicorn", "S", "HASH"), ("Minute", "N", "RANGE")],
            ),
            ("WildRydesAlarmState", vec![("Name", "S", "HASH")]),
            (
                "WildRydesAlarmHistory",
                vec![("Name", "S", "HASH"), ("StatusTime", "N", "RANGE")],
            ),
        ] {
            let described = dynamodb.describe_table().table_name(name).send().await.unwrap();
            let table = described.table().unwrap();
            let schema: Vec<_> = table
                .key_schema()
                .iter()
                .map(|k| (k.attribute_name().to_owned(), k.key_type().as_str().to_owned()))
                .collect();
            let types: BTreeMap<_, _> = table
                .attribute_definitions()
                .iter()
                .map(|a| (a.attribute_name().to_owned(), a.attribute_type().as_str().to_owned()))
                .collect();
            for (i, (attribute, kind, key_type)) in keys.iter().enumerate() {
                assert_eq!(schema[i], (attribute.to_string(), key_type.to_string()), "{name}");
                assert_eq!(types[*attribute], *kind, "{name}");
            }
            assert_eq!(schema.len(), keys.len(), "{name}");
            assert_eq!(
                table.billing_mode_summary().and_then(|b| b.billing_mode()).map(|m| m.as_str()),
                Some("PAY_PER_REQUEST"),
                "{name}"
            );
            table_arns.insert(name, table.table_arn().unwrap().to_owned());
        }
        assert_eq!(ids["SensorTable"], "UnicornSensorData");

        // The sparse indexes: the minute store's of minutes not yet emitted,
        // which the scheduled flush queries (its TTL is read in the template
        // below), and the alarm state's of unicorns in ALARM.
        for (table, index, hash, range, projection) in [
            ("WildRydesAggregatorMinutes", "Pending", "Pending", "Touched", "KEYS_ONLY"),
            ("WildRydesAlarmState", "OpenAlarms", "Open", "StatusTime", "ALL"),
        ] {
            let described = dynamodb.describe_table().table_name(table).send().await.unwrap();
            let indexes: Vec<_> = described
                .table()
                .unwrap()
                .global_secondary_indexes()
                .iter()
                .map(|i| {
                    let keys: Vec<_> = i
                        .key_schema()
                        .iter()
                        .map(|k| (k.attribute_name().to_owned(), k.key_type().as_str().to_owned()))
                        .collect();
                    let projection = i.projection().and_then(|p| p.projection_type()).map(|t| t.as_str().to_owned());
                    (i.index_name().unwrap().to_owned(), keys, projection)
                })
                .collect();
            let keys = vec![(hash.to_owned(), "HASH".to_owned()), (range.to_owned(), "RANGE".to_owned())];
            assert_eq!(indexes, [(index.to_owned(), keys, Some(projection.to_owned()))], "{table}");
        }
        assert_eq!(ids["RejectsTable"], "UnicornSensorDataRejects");

        // What moto does not model, in the template CloudFormation holds.
        assert_eq!(
            body.matches("      StreamEncryption:\n        EncryptionType: KMS\n        KeyId: alias/aws/kinesis\n")
                .count(),
            2,
            "both streams encrypted with the AWS managed key"
        );
        assert_eq!(body.matches("      SSESpecification:\n        SSEEnabled: true\n").count(), 5);
        assert!(body.contains(
            "      TableName: UnicornSensorData\n      BillingMode: PAY_PER_REQUEST\n"
        ));
        assert_eq!(
            body.matches("PointInTimeRecoverySpecification:\n        PointInTimeRecoveryEnabled: true")
                .count(),
            1
        );
        // moto 5.2.5's CloudFormation leaves the minute store's TTL disabled.
        assert_eq!(
            body.matches("      TimeToLiveSpecification:\n        AttributeName: ExpiresAt\n        Enabled: true\n")
                .count(),
            1,
            "the minute store's TTL"
        );

        // Operators' topic, under a key of its own (CloudWatch alarms cannot
        // publish to a topic under alias/aws/sns; the key's policy is read in
        // wildrydes-ops's tests), with the email subscription.
        let sns = aws_sdk_sns::Client::new(config);
        let topic_arn = ids["AlarmTopic"].clone();
        let topic_key = ids["AlarmTopicKey"].as_str();
        let topic_key_arn = format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{topic_key}");
        let topic = sns.get_topic_attributes().topic_arn(&topic_arn).send().await.unwrap();
        let topic_attributes = topic.attributes().unwrap();
        assert_eq!(topic_attributes.get("KmsMasterKeyId").map(String::as_str), Some(topic_key), "{topic_attributes:?}");
        let subscriptions = sns
            .list_subscriptions_by_topic()
            .topic_arn(&topic_arn)
            .send()
            .await
            .unwrap();
        let endpoints: Vec<_> = subscriptions
            .subscriptions()
            .iter()
            .map(|s| (s.protocol().unwrap(), s.endpoint().unwrap()))
            .collect();
        assert_eq!(endpoints, [("email", "ops@example.com")]);

        // The failure queue, encrypted.
        let sqs = aws_sdk_sqs::Client::new(config);
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&ids["FailureQueue"])
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let attributes = attributes.attributes().unwrap();
        assert_eq!(attributes[&QueueAttributeName::SqsManagedSseEnabled], "true");
        let queue_arn = attributes[&QueueAttributeName::QueueArn].clone();

        // Functions.
        let lambda = aws_sdk_lambda::Client::new(config);
        let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let expected_env = [
            (
                "WildRydesStreamProcessor",
                env(&[("TABLE_NAME", "UnicornSensorData"), ("REJECTS_TABLE_NAME", "UnicornSensorDataRejects")]),
            ),
            (
                "WildRydesAggregator",
                env(&[
                    ("OUTPUT_STREAM", "wildrydes-aggregated"),
                    ("STATE_TABLE_NAME", "WildRydesAggregatorMinutes"),
                    ("REJECTS_TABLE_NAME", "UnicornSensorDataRejects"),
                ]),
            ),
            (
                "WildRydesAlarm",
                env(&[
                    ("ALARM_TABLE_NAME", "WildRydesAlarmState"),
                    ("ALARM_HISTORY_TABLE_NAME", "WildRydesAlarmHistory"),
                    ("ALARM_TOPIC_ARN", &topic_arn),
                    ("REJECTS_TABLE_NAME", "UnicornSensorDataRejects"),
                ]),
            ),
        ];
        let mut roles = BTreeMap::new();
        for (function, expected) in &expected_env {
            let f = lambda
                .get_function_configuration()
                .function_name(*function)
                .send()
                .await
                .unwrap();
            assert_eq!(f.runtime().map(|r| r.as_str()), Some("provided.al2023"), "{function}");
            assert_eq!(f.handler(), Some("bootstrap"), "{function}");
            let arch: Vec<_> = f.architectures().iter().map(|a| a.as_str()).collect();
            assert_eq!(arch, ["x86_64"], "{function}");
            let variables: BTreeMap<String, String> = f
                .environment()
                .and_then(|e| e.variables())
                .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            assert_eq!(&variables, expected, "{function}");
            let role = f.role().unwrap().rsplit('/').next().unwrap().to_owned();
            roles.insert(*function, role);
        }

        // Triggers.
        let processor = trigger(config, "WildRydesStreamProcessor").await;
        assert_eq!(processor.event_source_arn(), Some(aggregates_arn));
        assert_eq!(processor.starting_position().map(|p| p.as_str()), Some("TRIM_HORIZON"));
        assert_eq!(processor.batch_size(), Some(250));
        assert_eq!(processor.maximum_batching_window_in_seconds(), Some(5));
        let types: Vec<_> = processor.function_response_types().iter().map(|t| t.as_str()).collect();
        assert_eq!(types, ["ReportBatchItemFailures"]);
        assert_eq!(processor.bisect_batch_on_function_error(), Some(true));
        assert_eq!(processor.maximum_retry_attempts(), Some(10));
        assert_eq!(processor.maximum_record_age_in_seconds(), Some(3600));
        let on_failure = |m: &aws_sdk_lambda::types::EventSourceMappingConfiguration| {
            m.destination_config()
                .and_then(|d| d.on_failure())
                .and_then(|f| f.destination())
                .map(str::to_owned)
        };
        assert_eq!(on_failure(&processor).as_deref(), Some(queue_arn.as_str()));
        assert_eq!(processor.tumbling_window_in_seconds(), None);

        let aggregator = trigger(config, "WildRydesAggregator").await;
        assert_eq!(aggregator.event_source_arn(), Some(readings_arn));
        assert_eq!(aggregator.starting_position().map(|p| p.as_str()), Some("TRIM_HORIZON"));
        assert_eq!(aggregator.tumbling_window_in_seconds(), None);
        assert_eq!(aggregator.batch_size(), Some(1000));
        assert_eq!(aggregator.maximum_batching_window_in_seconds(), Some(5));
        assert_ne!(aggregator.bisect_batch_on_function_error(), Some(true));
        assert_eq!(aggregator.maximum_retry_attempts(), Some(10));
        assert_eq!(aggregator.maximum_record_age_in_seconds(), Some(3600));
        assert_eq!(on_failure(&aggregator).as_deref(), Some(queue_arn.as_str()));

        // The aggregator's schedule, and EventBridge's permission to invoke
        // it from that rule only. The rule's schedule and target are read in
        // the template (the tests have no EventBridge client).
        assert_eq!(ids["AggregatorSchedule"], "WildRydesAggregatorFlush");
        let rule_arn = format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/WildRydesAggregatorFlush");
        let policy = lambda.get_policy().function_name("WildRydesAggregator").send().await.unwrap();
        let policy: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
        let statements = policy["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 1, "{policy}");
        assert_eq!(statements[0]["Effect"], "Allow");
        assert_eq!(statements[0]["Action"], "lambda:InvokeFunction");
        assert_eq!(statements[0]["Principal"]["Service"], "events.amazonaws.com");
        assert_eq!(statements[0]["Condition"]["ArnLike"]["AWS:SourceArn"], rule_arn.as_str());
        assert!(body.contains(
            "      ScheduleExpression: rate(1 minute)\n      State: ENABLED\n      Targets:\n        - Id: WildRydesAggregator\n          Arn: !GetAtt AggregatorFunction.Arn\n"
        ));
        for function in ["WildRydesStreamProcessor", "WildRydesAlarm"] {
            assert!(
                lambda.get_policy().function_name(function).send().await.is_err(),
                "{function} may be invoked by another service"
            );
        }

        // Without --alarm-enhanced-fan-out the alarm polls the stream: no
        // consumer (the template's side is read in wildrydes-ops's tests).
        let alarm = trigger(config, "WildRydesAlarm").await;
        assert_eq!(alarm.event_source_arn(), Some(readings_arn));
        assert!(!ids.contains_key("AlarmConsumer"), "{ids:?}");
        assert_eq!(alarm.starting_position().map(|p| p.as_str()), Some("LATEST"));
        let types: Vec<_> = alarm.function_response_types().iter().map(|t| t.as_str()).collect();
        assert_eq!(types, ["ReportBatchItemFailures"]);
        assert_eq!(alarm.bisect_batch_on_function_error(), Some(true));
        assert_eq!(alarm.maximum_retry_attempts(), Some(10));
        assert_eq!(alarm.maximum_record_age_in_seconds(), Some(3600));
        assert_eq!(on_failure(&alarm).as_deref(), Some(queue_arn.as_str()));

        // Roles: exactly these actions on exactly these resources.
        let sensor = table_arns["UnicornSensorData"].as_str();
        let rejects = table_arns["UnicornSensorDataRejects"].as_str();
        let send_failure = grant(&["sqs:SendMessage"], &[&queue_arn]);

        let mut expected = logs_and_read("WildRydesStreamProcessor", aggregates_arn);
        expected.extend(grant(&["dynamodb:BatchWriteItem", "dynamodb:PutItem"], &[sensor, rejects]));
        expected.extend(send_failure.clone());
        let actual = allowed(config, &roles["WildRydesStreamProcessor"]).await;
        assert_eq!(actual, expected, "stream processor role");
        assert_no_wildcards("stream processor", &actual);

        let mut expected = logs_and_read("WildRydesAggregator", readings_arn);
        expected.extend(grant(&["kinesis:PutRecord", "kinesis:PutRecords"], &[aggregates_arn]));
        let minutes = table_arns["WildRydesAggregatorMinutes"].as_str();
        expected.extend(grant(&["dynamodb:PutItem", "dynamodb:Query"], &[minutes]));
        expected.extend(grant(&["dynamodb:Query"], &[&format!("{minutes}/index/Pending")]));
        expected.extend(grant(&["dynamodb:BatchWriteItem", "dynamodb:PutItem"], &[rejects]));
        expected.extend(send_failure.clone());
        let actual = allowed(config, &roles["WildRydesAggregator"]).await;
        assert_eq!(actual, expected, "aggregator role");
        assert_no_wildcards("aggregator", &actual);

        let mut expected = logs_and_read("WildRydesAlarm", readings_arn);
        expected.extend(grant(
            &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
            &[&table_arns["WildRydesAlarmState"]],
        ));
        expected.extend(grant(&["dynamodb:PutItem"], &[&table_arns["WildRydesAlarmHistory"]]));
        expected.extend(grant(&["sns:Publish"], &[&topic_arn]));
        expected.extend(grant(&["kms:Decrypt", "kms:GenerateDataKey"], &[&topic_key_arn]));
        expected.extend(grant(&["dynamodb:BatchWriteItem", "dynamodb:PutItem"], &[rejects]));
        expected.extend(send_failure);
        let actual = allowed(config, &roles["WildRydesAlarm"]).await;
        assert_eq!(actual, expected, "alarm role");
        assert_no_wildcards("alarm", &actual);

        // The dashboard (its body is read in wildrydes-ops's tests).
        assert_eq!(ids["Dashboard"], "wildrydes");

        // One role per function.
        let distinct: BTreeSet<_> = roles.values().collect();
        assert_eq!(distinct.len(), 3);
    })
    .await;
}

#[tokio::test]
async fn a_second_deploy_changes_nothing_and_a_new_batch_size_updates_in_place() {
    bounded(async {
        let sandbox = Sandbox::start().await;
        let config = sandbox.config();
        let first = sandbox.deploy(Settings::default()).await;
        assert_eq!(first.outcome, Outcome::Created);
        let events = stack_event_count(config).await;
        let resources = physical_ids(config).await;
        let before = trigger(config, "WildRydesStreamProcessor").await;
        assert_eq!(before.batch_size(), Some(100));

        // Same zips, same settings: nothing uploaded, no change set executed,
        // not one new stack event.
        let again = sandbox.deploy(Settings::default()).await;
        assert_eq!(again.outcome, Outcome::Unchanged);
        assert!(again.uploaded.is_empty(), "{:?}", again.uploaded);
        assert!(again.events.is_empty());
        assert_eq!(again.outputs, first.outputs);
        assert_eq!(stack_event_count(config).await, events);
        assert_eq!(
            stack_status(config).await.as_deref(),
            Some("CREATE_COMPLETE")
        );

        // A new batch size: an update of the trigger, in place.
        let settings = Settings {
            batch_size: 500,
            ..Settings::default()
        };
        let update = sandbox.deploy(settings).await;
        assert_eq!(update.outcome, Outcome::Updated);
        assert!(update.uploaded.is_empty());
        assert!(!update.events.is_empty());
        assert_eq!(
            stack_status(config).await.as_deref(),
            Some("UPDATE_COMPLETE")
        );
        let after = trigger(config, "WildRydesStreamProcessor").await;
        assert_eq!(after.batch_size(), Some(500));
        assert_eq!(after.uuid(), before.uuid(), "the trigger was replaced");
        assert_eq!(
            physical_ids(config).await,
            resources,
            "a resource was replaced"
        );
    })
    .await;
}

#[tokio::test]
async fn a_dry_run_shows_the_changes_and_changes_nothing() {
    bounded(async {
        let sandbox = Sandbox::start().await;
        let config = sandbox.config();
        let dry = DeployOptions {
            dry_run: true,
            ..sandbox.options(Settings::default())
        };

        // Before the first deploy: every resource would be added; no stack,
        // no bucket, nothing uploaded.
        let plan = deploy(config, &dry).await.unwrap();
        let Outcome::Planned(changes) = &plan.outcome else {
            panic!("not a plan: {:?}", plan.outcome);
        };
        // Every resource. moto 5.2.5 lists a resource whose condition is
        // false too (the alarm's enhanced fan-out consumer, off by default),
        // which AWS leaves out: that one may be there or not.
        let resource_count = wildrydes_ops::template::TEMPLATE
            .lines()
            .filter(|l| l.starts_with("    Type: AWS::"))
            .count();
        let unconditional = changes
            .iter()
            .filter(|c| c.logical_id != "AlarmConsumer")
            .count();
        assert_eq!(unconditional, resource_count - 1, "{changes:?}");
        assert!(changes.iter().all(|c| c.action == "Add"), "{changes:?}");
        assert!(
            changes
                .iter()
                .any(|c| c.logical_id == "StreamProcessorTrigger"
                    && c.resource_type == "AWS::Lambda::EventSourceMapping")
        );
        assert!(plan.uploaded.is_empty());
        assert_eq!(stack_status(config).await, None);
        let s3 = xtask_s3(config);
        assert!(
            s3.head_bucket().bucket(&plan.bucket).send().await.is_err(),
            "bucket created"
        );

        // After it: a dry run with another batch size and new zips changes
        // neither the trigger nor the code, and leaves no change set.
        let created = sandbox.deploy(Settings::default()).await;
        assert_eq!(created.outcome, Outcome::Created);
        let events = stack_event_count(config).await;
        placeholder_zips(sandbox.zips.path(), "v2");
        let dry = DeployOptions {
            settings: Settings {
                batch_size: 7,
                ..Settings::default()
            },
            ..dry
        };
        let plan = deploy(config, &dry).await.unwrap();
        assert!(
            matches!(plan.outcome, Outcome::Planned(_)),
            "{:?}",
            plan.outcome
        );
        assert!(plan.uploaded.is_empty());
        assert_eq!(
            trigger(config, "WildRydesStreamProcessor")
                .await
                .batch_size(),
            Some(100)
        );
        assert_eq!(stack_event_count(config).await, events);
        let cfn = aws_sdk_cloudformation::Client::new(config);
        let sets = cfn
            .list_change_sets()
            .stack_name(STACK)
            .send()
            .await
            .unwrap();
        // moto also lists executed change sets (AWS drops them).
        assert!(
            sets.summaries()
                .iter()
                .all(|s| s.execution_status().map(|e| e.as_str()) != Some("AVAILABLE")),
            "a change set was left behind: {:?}",
            sets.summaries()
        );
        let objects = s3
            .list_objects_v2()
            .bucket(&created.bucket)
            .send()
            .await
            .unwrap();
        assert_eq!(objects.contents().len(), 3, "the dry run uploaded");
    })
    .await;
}

#[tokio::test]
async fn destroy_keeps_the_data_tables_unless_told_to_delete_them() {
    bounded(async {
        let sandbox = Sandbox::start().await;
        let config = sandbox.config();
        sandbox.deploy(Settings::default()).await;

        let report = destroy(config, &destroy_options(false)).await.unwrap();
        assert!(report.stack_deleted);
        assert!(!report.events.is_empty());
        assert_eq!(
            report.kept_tables,
            ["UnicornSensorData", "UnicornSensorDataRejects"]
        );
        assert!(report.deleted_tables.is_empty());
        assert_eq!(
            report.bucket,
            Some(format!("wildrydes-artifacts-{ACCOUNT}-{REGION}"))
        );
        assert_eq!(stack_status(config).await, None);
        assert!(table_exists(config, "UnicornSensorData").await);
        assert!(table_exists(config, "UnicornSensorDataRejects").await);
        assert!(!table_exists(config, "WildRydesAggregatorMinutes").await);
        assert!(!table_exists(config, "WildRydesAlarmState").await);
        let lambda = aws_sdk_lambda::Client::new(config);
        let functions = lambda.list_functions().send().await.unwrap();
        assert!(functions.functions().is_empty());
        let streams = aws_sdk_kinesis::Client::new(config)
            .list_streams()
            .send()
            .await
            .unwrap();
        assert!(streams.stream_names().is_empty());

        // A new stack cannot be created over the kept tables: deploy says so
        // before trying.
        let refused = deploy(config, &sandbox.options(Settings::default()))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("table UnicornSensorData already exists"),
            "{refused}"
        );
        assert_eq!(stack_status(config).await, None);

        // --delete-data with the stack already gone removes the kept tables.
        let report = destroy(config, &destroy_options(true)).await.unwrap();
        assert!(!report.stack_deleted);
        assert_eq!(
            report.deleted_tables,
            ["UnicornSensorData", "UnicornSensorDataRejects"]
        );
        assert!(!table_exists(config, "UnicornSensorData").await);

        // And with a stack: everything goes.
        let created = sandbox.deploy(Settings::default()).await;
        assert_eq!(created.outcome, Outcome::Created);
        let report = destroy(config, &destroy_options(true)).await.unwrap();
        assert!(report.stack_deleted);
        assert!(report.kept_tables.is_empty());
        assert_eq!(report.deleted_tables.len(), 2);
        for table in ["UnicornSensorData", "UnicornSensorDataRejects"] {
            assert!(!table_exists(config, table).await, "{table}");
        }
    })
    .await;
}

#[tokio::test]
async fn missing_credentials_and_an_unreachable_endpoint_are_one_clear_line() {
    bounded(async {
        let zips = tempfile::tempdir().unwrap();
        placeholder_zips(zips.path(), "v1");
        let options = options(zips.path(), Settings::default());

        let no_credentials = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(format!("http://127.0.0.1:{}", free_port()))
            .build();
        let line = deploy(&no_credentials, &options).await.unwrap_err();
        assert_eq!(line.chain().count(), 1, "{line:?}");
        let line = line.to_string();
        assert!(line.starts_with("no usable AWS credentials"), "{line}");
        assert!(!line.contains('\n'), "{line}");

        let unreachable = static_sdk_config(Some(&format!("http://127.0.0.1:{}", free_port())));
        let line = deploy(&unreachable, &options).await.unwrap_err();
        assert_eq!(line.chain().count(), 1, "{line:?}");
        let line = line.to_string();
        assert!(
            line.starts_with("cannot check the AWS credentials: cannot reach AWS"),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
    })
    .await;
}
