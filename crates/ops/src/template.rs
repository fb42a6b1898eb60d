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
}
