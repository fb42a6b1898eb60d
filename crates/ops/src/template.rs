//! `infra/wildrydes.yaml`, compiled in, and what deploy and destroy need to
//! know about it: its parameters, its Lambda functions and the tables it
//! keeps when the stack is deleted.

use wildrydes_core::names::PipelineName;

/// The CloudFormation template (`infra/wildrydes.yaml`); cargo rebuilds
/// xtask when it changes.
pub const TEMPLATE: &str = include_str!("../../../infra/wildrydes.yaml");

/// Default stack name.
pub const DEFAULT_STACK_NAME: &str = "wildrydes";

/// One Lambda function of the template: the binary that is its `bootstrap`
/// and the template parameter that takes its zip's S3 key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    /// Cargo binary (`[[bin]]` name) built into the zip.
    pub binary: &'static str,
    /// Template parameter holding the zip's S3 key.
    pub code_key_parameter: &'static str,
    /// The function's name on AWS.
    pub function_name: &'static str,
}

/// The template's functions.
pub const FUNCTIONS: [Function; 3] = [
    Function {
        binary: "wildrydes-stream-processor",
        code_key_parameter: "StreamProcessorCodeKey",
        function_name: PipelineName::Process.function_name(),
    },
    Function {
        binary: "wildrydes-aggregator",
        code_key_parameter: "AggregatorCodeKey",
        function_name: PipelineName::Aggregate.function_name(),
    },
    Function {
        binary: "wildrydes-alarm",
        code_key_parameter: "AlarmCodeKey",
        function_name: PipelineName::Alarm.function_name(),
    },
];

/// A table the template keeps (`DeletionPolicy: Retain`) when the stack is
/// deleted, because it holds data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptTable {
    /// Its logical id in the template.
    pub logical_id: &'static str,
    /// Its name (fixed in the template).
    pub table_name: &'static str,
}

/// The tables kept when the stack is deleted: the aggregates and the rejects.
pub const KEPT_TABLES: [KeptTable; 2] = [
    KeptTable {
        logical_id: "SensorTable",
        table_name: wildrydes_core::names::SENSOR_TABLE,
    },
    KeptTable {
        logical_id: "RejectsTable",
        table_name: wildrydes_core::names::REJECTS_TABLE,
    },
];

/// Template parameter naming the bucket of the zips.
pub const ARTIFACT_BUCKET_PARAMETER: &str = "ArtifactBucket";

#[cfg(test)]
mod tests {
    use super::*;

    /// The names above are the template's: a renamed parameter, function or
    /// table there must be renamed here too.
    #[test]
    fn names_match_the_template() {
        for function in FUNCTIONS {
            assert!(TEMPLATE.contains(&format!("  {}:\n", function.code_key_parameter)));
            assert!(TEMPLATE.contains(&format!("FunctionName: {}\n", function.function_name)));
            assert!(TEMPLATE.contains(&format!("({})", function.binary)));
        }
        for table in KEPT_TABLES {
            let definition = format!(
                "  {}:\n    Type: AWS::DynamoDB::Table\n    DeletionPolicy: Retain\n    UpdateReplacePolicy: Retain\n    Properties:\n      TableName: {}\n",
                table.logical_id, table.table_name
            );
            assert!(TEMPLATE.contains(&definition), "{definition}");
        }
        assert_eq!(
            TEMPLATE.matches("DeletionPolicy: Retain").count(),
            KEPT_TABLES.len()
        );
        assert!(TEMPLATE.contains(&format!("  {ARTIFACT_BUCKET_PARAMETER}:\n")));
    }

    /// The entry `name` of the template's top-level `section` (a parameter,
    /// a condition, a resource): its own line and every line indented
    /// deeper below it, without the blank lines that end it. Panics, naming it, when there is none.
    fn entry(section: &str, name: &str) -> String {
        let mut lines = TEMPLATE
            .lines()
            .skip_while(|l| *l != format!("{section}:"))
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with(' ') || l.starts_with('#'))
            .skip_while(|l| !l.starts_with(&format!("  {name}:")));
        let first = lines
            .next()
            .unwrap_or_else(|| panic!("no {name} in the template's {section}"));
        let rest = lines.take_while(|l| l.is_empty() || l.starts_with("   "));
        std::iter::once(first)
            .chain(rest)
            .collect::<Vec<_>>()
            .join("\n")
            .trim_end()
            .to_owned()
    }

    /// `--alarm-enhanced-fan-out` on AWS, read in the template (moto cannot
    /// create a stream consumer, so the deploy tests cannot show it): off by
    /// default; when on, a consumer of the readings stream, the alarm's
    /// trigger reading through it, and the alarm's role allowed to.
    #[test]
    fn the_alarm_can_read_through_an_enhanced_fan_out_consumer() {
        let parameter = entry("Parameters", "AlarmEnhancedFanOut");
        assert!(parameter.contains("\n    Type: String\n"), "{parameter}");
        assert!(
            parameter.contains("\n    AllowedValues: [\"true\", \"false\"]\n"),
            "{parameter}"
        );
        assert!(
            parameter.ends_with("\n    Default: \"false\""),
            "{parameter}"
        );
        let description = parameter.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            description.contains("consumer-shard-hour") && description.contains("per-GB"),
            "the description does not say what it costs: {parameter}"
        );

        let condition = entry("Conditions", "AlarmUsesEnhancedFanOut");
        assert_eq!(
            condition,
            "  AlarmUsesEnhancedFanOut: !Equals [!Ref AlarmEnhancedFanOut, \"true\"]"
        );

        let readings = entry("Resources", "ReadingsStream");
        assert!(
            readings.contains("\n    Type: AWS::Kinesis::Stream\n")
                && readings.contains(&format!(
                    "\n      Name: {}\n",
                    wildrydes_core::names::READINGS_STREAM
                )),
            "{readings}"
        );
        let consumer = entry("Resources", "AlarmConsumer");
        for line in [
            "    Type: AWS::Kinesis::StreamConsumer",
            "    Condition: AlarmUsesEnhancedFanOut",
            "      ConsumerName: wildrydes-alarm",
            "      StreamARN: !GetAtt ReadingsStream.Arn",
        ] {
            assert!(consumer.lines().any(|l| l == line), "{line}:\n{consumer}");
        }

        let trigger = entry("Resources", "AlarmTrigger");
        assert!(
            trigger.contains(
                "      EventSourceArn: !If\n        - AlarmUsesEnhancedFanOut\n        - !GetAtt AlarmConsumer.ConsumerARN\n        - !GetAtt ReadingsStream.Arn\n"
            ),
            "{trigger}"
        );

        // The consumer's permissions only with the consumer, beside the
        // stream's (Lambda still lists the shards on the stream).
        let role = entry("Resources", "AlarmRole");
        let through_consumer = "              - !If\n                - AlarmUsesEnhancedFanOut\n                - Sid: ReadReadingsThroughConsumer\n                  Effect: Allow\n                  Action:\n                    - kinesis:DescribeStreamConsumer\n                    - kinesis:SubscribeToShard\n                  Resource: !GetAtt AlarmConsumer.ConsumerARN\n                - !Ref AWS::NoValue\n";
        assert!(role.contains(through_consumer), "{role}");
        let read_stream = "              - Sid: ReadReadings\n                Effect: Allow\n                Action:\n                  - kinesis:DescribeStream\n                  - kinesis:DescribeStreamSummary\n                  - kinesis:GetRecords\n                  - kinesis:GetShardIterator\n                  - kinesis:ListShards\n                Resource: !GetAtt ReadingsStream.Arn\n";
        assert!(role.contains(read_stream), "{role}");

        // Nothing else names the consumer: no other role may read through it.
        assert_eq!(TEMPLATE.matches("AlarmConsumer.ConsumerARN").count(), 2);
        assert_eq!(
            TEMPLATE
                .matches("Condition: AlarmUsesEnhancedFanOut")
                .count(),
            1
        );
    }

    /// The value of `key` in a resource's own lines (`    Type: value`) or
    /// among its properties (`      Key: value`); panics when there is none.
    fn property<'e>(entry: &'e str, key: &str) -> &'e str {
        let prefix = format!("{key}: ");
        entry
            .lines()
            .filter(|l| {
                let indent = l.len() - l.trim_start().len();
                indent == 4 || indent == 6
            })
            .find_map(|l| l.trim_start().strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {key}:\n{entry}"))
    }

    /// One of the pipeline's alarms, as the template must declare it.
    struct PipelineAlarm {
        logical_id: String,
        namespace: &'static str,
        metric: &'static str,
        statistic: &'static str,
        /// The dimension's name, and the resource whose name it is, with
        /// the type and name that resource must have.
        dimension: (&'static str, &'static str),
        watched: (&'static str, &'static str, String),
        period: &'static str,
        evaluation_periods: &'static str,
        /// The threshold's parameter and its default.
        threshold: (&'static str, &'static str),
        comparison: &'static str,
    }

    /// The pipeline watched by CloudWatch alarms, to the operators'
    /// topic. moto's CloudFormation skips `AWS::CloudWatch::Alarm`, so they
    /// are read here: each alarm's metric, its dimension (the right
    /// function, queue or table, by reference), its threshold (a parameter
    /// whose default is the documented one), its actions; and no alarm
    /// beside these.
    #[test]
    fn the_pipeline_alarms_watch_every_function_the_queue_and_the_tables() {
        let functions = [
            ("Aggregator", "AggregatorFunction", "WildRydesAggregator"),
            (
                "StreamProcessor",
                "StreamProcessorFunction",
                "WildRydesStreamProcessor",
            ),
            ("Alarm", "AlarmFunction", "WildRydesAlarm"),
        ];
        // Per function: (logical id's suffix, metric, statistic, period,
        // evaluation periods, threshold, comparison).
        let per_function = [
            (
                "IteratorAgeAlarm",
                "IteratorAge",
                "Maximum",
                "60",
                "!Ref IteratorAgeAlarmMinutes",
                ("IteratorAgeAlarmMilliseconds", "60000"),
                "GreaterThanThreshold",
            ),
            (
                "ErrorsAlarm",
                "Errors",
                "Sum",
                "300",
                "1",
                ("FunctionErrorsAlarmThreshold", "1"),
                "GreaterThanOrEqualToThreshold",
            ),
            (
                "ThrottlesAlarm",
                "Throttles",
                "Sum",
                "300",
                "1",
                ("FunctionThrottlesAlarmThreshold", "1"),
                "GreaterThanOrEqualToThreshold",
            ),
        ];
        let mut alarms = Vec::new();
        for (prefix, function, name) in functions {
            assert!(
                FUNCTIONS.iter().any(|f| f.function_name == name),
                "{name} is not one of FUNCTIONS"
            );
            for (suffix, metric, statistic, period, evaluation_periods, threshold, comparison) in
                per_function
            {
                alarms.push(PipelineAlarm {
                    logical_id: format!("{prefix}{suffix}"),
                    namespace: "AWS/Lambda",
                    metric,
                    statistic,
                    dimension: ("FunctionName", function),
                    watched: ("AWS::Lambda::Function", "FunctionName", name.to_owned()),
                    period,
                    evaluation_periods,
                    threshold,
                    comparison,
                });
            }
        }
        alarms.push(PipelineAlarm {
            logical_id: "FailureQueueDepthAlarm".to_owned(),
            namespace: "AWS/SQS",
            metric: "ApproximateNumberOfMessagesVisible",
            statistic: "Maximum",
            // The queue's name is an attribute: its Ref is its URL.
            dimension: ("QueueName", "!GetAtt FailureQueue.QueueName"),
            watched: ("AWS::SQS::Queue", "SqsManagedSseEnabled", "true".to_owned()),
            period: "300",
            evaluation_periods: "1",
            threshold: ("FailureQueueAlarmDepth", "1"),
            comparison: "GreaterThanOrEqualToThreshold",
        });
        // Every table the functions write. (The history table's name is
        // spelled out until names.rs's ALARM_HISTORY_TABLE is committed.)
        for (table, name) in [
            ("SensorTable", wildrydes_core::names::SENSOR_TABLE),
            ("RejectsTable", wildrydes_core::names::REJECTS_TABLE),
            (
                "AggregatorStateTable",
                wildrydes_core::names::AGGREGATOR_STATE_TABLE,
            ),
            ("AlarmStateTable", wildrydes_core::names::ALARM_TABLE),
            ("AlarmHistoryTable", "WildRydesAlarmHistory"),
        ] {
            alarms.push(PipelineAlarm {
                logical_id: format!("{table}WriteThrottlesAlarm"),
                namespace: "AWS/DynamoDB",
                metric: "WriteThrottleEvents",
                statistic: "Sum",
                dimension: ("TableName", table),
                watched: ("AWS::DynamoDB::Table", "TableName", name.to_owned()),
                period: "300",
                evaluation_periods: "1",
                threshold: ("WriteThrottlesAlarmThreshold", "1"),
                comparison: "GreaterThanOrEqualToThreshold",
            });
        }

        for alarm in &alarms {
            let declared = entry("Resources", &alarm.logical_id);
            let at = |key| property(&declared, key);
            let id = &alarm.logical_id;
            assert_eq!(at("Type"), "AWS::CloudWatch::Alarm", "{id}");
            assert_eq!(at("Namespace"), alarm.namespace, "{id}");
            assert_eq!(at("MetricName"), alarm.metric, "{id}");
            assert_eq!(at("Statistic"), alarm.statistic, "{id}");
            let (dimension, resource) = alarm.dimension;
            let value = if resource.starts_with('!') {
                resource.to_owned()
            } else {
                format!("!Ref {resource}")
            };
            let dimensions = format!(
                "\n      Dimensions:\n        - Name: {dimension}\n          Value: {value}\n      Period:"
            );
            assert!(
                declared.contains(&dimensions),
                "{id}: not {dimensions}\n{declared}"
            );
            let resource_id = resource
                .trim_start_matches("!GetAtt ")
                .split('.')
                .next()
                .unwrap_or_default();
            let watched = entry("Resources", resource_id);
            let (kind, key, name) = &alarm.watched;
            assert_eq!(property(&watched, "Type"), *kind, "{id}: {resource_id}");
            assert_eq!(property(&watched, key), name, "{id}: {resource_id}");
            assert_eq!(at("Period"), alarm.period, "{id}");
            assert_eq!(at("EvaluationPeriods"), alarm.evaluation_periods, "{id}");
            let (parameter, default) = alarm.threshold;
            assert_eq!(at("Threshold"), format!("!Ref {parameter}"), "{id}");
            assert_eq!(at("ComparisonOperator"), alarm.comparison, "{id}");
            assert_eq!(at("TreatMissingData"), "notBreaching", "{id}");
            assert_eq!(at("AlarmActions"), "[!Ref AlarmTopic]", "{id}");
            assert_eq!(at("OKActions"), "[!Ref AlarmTopic]", "{id}");
            assert!(at("AlarmDescription").len() > 40, "{id}: no description");

            let parameter = entry("Parameters", parameter);
            assert!(parameter.contains("\n    Type: Number\n"), "{parameter}");
            assert!(parameter.contains("\n    Description: "), "{parameter}");
            assert!(
                parameter.ends_with(&format!("\n    Default: {default}")),
                "{parameter}"
            );
        }
        let minutes = entry("Parameters", "IteratorAgeAlarmMinutes");
        assert!(minutes.contains("\n    Description: "), "{minutes}");
        assert!(minutes.ends_with("\n    Default: 5"), "{minutes}");

        // Each alarm is one of the above.
        assert_eq!(
            TEMPLATE
                .matches("\n    Type: AWS::CloudWatch::Alarm\n")
                .count(),
            alarms.len()
        );
        assert_eq!(alarms.len(), 3 * 3 + 1 + 5);

        // CloudWatch cannot publish to a topic under alias/aws/sns: the
        // topic has a key whose policy lets it, and the alarm function's
        // role may use that key (checked on moto by the deploy tests).
        let topic = entry("Resources", "AlarmTopic");
        assert_eq!(property(&topic, "KmsMasterKeyId"), "!Ref AlarmTopicKey");
        let key = entry("Resources", "AlarmTopicKey");
        assert_eq!(property(&key, "Type"), "AWS::KMS::Key");
        let cloudwatch = "          - Sid: CloudWatchAlarms\n            Effect: Allow\n            Principal:\n              Service: cloudwatch.amazonaws.com\n            Action:\n              - kms:Decrypt\n              - kms:GenerateDataKey\n            Resource: \"*\"";
        assert!(key.contains(cloudwatch), "{key}");
    }

    /// The dashboard `wildrydes`: per function, the EMF metrics its
    /// reports emit (namespace `WildRydes`, dimension `FunctionName`, see
    /// wildrydes-lambda's `telemetry`) and its iterator age.
    #[test]
    fn the_dashboard_graphs_each_function() {
        let dashboard = entry("Resources", "Dashboard");
        assert_eq!(property(&dashboard, "Type"), "AWS::CloudWatch::Dashboard");
        assert_eq!(property(&dashboard, "DashboardName"), "wildrydes");
        let (_, body) = dashboard
            .split_once("      DashboardBody: !Sub |\n")
            .expect("a !Sub body");
        let body: serde_json::Value = serde_json::from_str(body).expect("the body is JSON");

        // Each widget's metrics, shorthand ("." and "...") expanded: (namespace,
        // metric, dimension, value).
        let mut graphed = Vec::new();
        for widget in body["widgets"].as_array().expect("widgets") {
            let mut previous: Vec<String> = Vec::new();
            for line in widget["properties"]["metrics"].as_array().expect("metrics") {
                let fields: Vec<String> = line
                    .as_array()
                    .expect("a metric line")
                    .iter()
                    .filter_map(|f| f.as_str().map(str::to_owned))
                    .collect();
                let fields = if fields.first().map(String::as_str) == Some("...") {
                    let mut expanded = previous.clone();
                    let replaced = fields.len() - 1;
                    let keep = expanded.len() - replaced;
                    expanded.truncate(keep);
                    expanded.extend(fields[1..].iter().cloned());
                    expanded
                } else {
                    fields
                        .iter()
                        .enumerate()
                        .map(|(i, f)| {
                            if f == "." {
                                previous[i].clone()
                            } else {
                                f.clone()
                            }
                        })
                        .collect()
                };
                assert_eq!(fields.len(), 4, "{line}");
                graphed.push((
                    fields[0].clone(),
                    fields[1].clone(),
                    fields[2].clone(),
                    fields[3].clone(),
                ));
                previous = fields;
            }
        }
        let has = |namespace: &str, metric: &str, dimension: &str, value: &str| {
            graphed.iter().any(|(n, m, d, v)| {
                (n.as_str(), m.as_str(), d.as_str(), v.as_str())
                    == (namespace, metric, dimension, value)
            })
        };
        let common = ["RecordsIn", "Rejected", "DurationMs"];
        for (function, name, own) in [
            (
                "AggregatorFunction",
                "WildRydesAggregator",
                &[
                    "AggregatesEmitted",
                    "MinutesStored",
                    "UnicornsLoaded",
                    "Duplicates",
                    "CorrectedReadings",
                    "BeyondHorizon",
                    "OpenMinutes",
                ][..],
            ),
            (
                "StreamProcessorFunction",
                "WildRydesStreamProcessor",
                &["ItemsWritten", "Duplicates", "Retries", "BatchFailures"][..],
            ),
            (
                "AlarmFunction",
                "WildRydesAlarm",
                &[
                    "Notifications",
                    "StaleObservations",
                    "Races",
                    "NotifyRetries",
                    "BatchFailures",
                ][..],
            ),
        ] {
            assert!(FUNCTIONS.iter().any(|f| f.function_name == name));
            let value = format!("${{{function}}}");
            for metric in common.iter().chain(own) {
                assert!(
                    has("WildRydes", metric, "FunctionName", &value),
                    "{name}: {metric} not graphed"
                );
            }
            assert!(
                has("AWS/Lambda", "IteratorAge", "FunctionName", &value),
                "{name}"
            );
            assert!(
                has("AWS/Lambda", "Errors", "FunctionName", &value),
                "{name}"
            );
        }
        // Every widget in the stack's region.
        assert!(
            body["widgets"]
                .as_array()
                .expect("widgets")
                .iter()
                .all(|w| w["properties"]["region"] == "${AWS::Region}")
        );
    }
}
