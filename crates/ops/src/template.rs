//! `infra/wildrydes.yaml`, compiled in, and what deploy and destroy need to
//! know about it: its parameters, its Lambda functions and the tables it
//! keeps when the stack is deleted.

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
        function_name: "WildRydesStreamProcessor",
    },
    Function {
        binary: "wildrydes-aggregator",
        code_key_parameter: "AggregatorCodeKey",
        function_name: "WildRydesAggregator",
    },
    Function {
        binary: "wildrydes-alarm",
        code_key_parameter: "AlarmCodeKey",
        function_name: "WildRydesAlarm",
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
}
