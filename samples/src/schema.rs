//! The sensor table's schema, as an Arrow schema and as an Avro schema.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Column names of the sensor files, in file order (the `day` partition column
/// lives in the directory name, not in the files).
pub(crate) const COLUMNS: [&str; 15] = [
    "reading_id",
    "ts",
    "asset_id",
    "asset_type",
    "air_temp_k",
    "process_temp_k",
    "rotation_speed_rpm",
    "torque_nm",
    "tool_wear_min",
    "machine_failure",
    "twf",
    "hdf",
    "pwf",
    "osf",
    "rnf",
];

/// The Arrow schema of the sensor files.
pub(crate) fn arrow_schema() -> SchemaRef {
    let nullable_bool = |name: &str| Field::new(name, DataType::Boolean, true);
    Arc::new(Schema::new(vec![
        Field::new("reading_id", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new("asset_id", DataType::Int32, false),
        Field::new("asset_type", DataType::Utf8, false),
        Field::new("air_temp_k", DataType::Float64, true),
        Field::new("process_temp_k", DataType::Float64, true),
        Field::new("rotation_speed_rpm", DataType::Int32, true),
        Field::new("torque_nm", DataType::Float64, true),
        Field::new("tool_wear_min", DataType::Int32, true),
        nullable_bool("machine_failure"),
        nullable_bool("twf"),
        nullable_bool("hdf"),
        nullable_bool("pwf"),
        nullable_bool("osf"),
        nullable_bool("rnf"),
    ]))
}

/// The Avro schema of the sensor files, as the exact JSON text stored in each
/// file's header. Nullable columns are unions `["null", T]` with default null.
pub(crate) const AVRO_SCHEMA_JSON: &str = concat!(
    r#"{"type":"record","name":"sensor_reading","namespace":"lakewave.samples","fields":["#,
    r#"{"name":"reading_id","type":"long"},"#,
    r#"{"name":"ts","type":{"type":"long","logicalType":"timestamp-micros"}},"#,
    r#"{"name":"asset_id","type":"int"},"#,
    r#"{"name":"asset_type","type":"string"},"#,
    r#"{"name":"air_temp_k","type":["null","double"],"default":null},"#,
    r#"{"name":"process_temp_k","type":["null","double"],"default":null},"#,
    r#"{"name":"rotation_speed_rpm","type":["null","int"],"default":null},"#,
    r#"{"name":"torque_nm","type":["null","double"],"default":null},"#,
    r#"{"name":"tool_wear_min","type":["null","int"],"default":null},"#,
    r#"{"name":"machine_failure","type":["null","boolean"],"default":null},"#,
    r#"{"name":"twf","type":["null","boolean"],"default":null},"#,
    r#"{"name":"hdf","type":["null","boolean"],"default":null},"#,
    r#"{"name":"pwf","type":["null","boolean"],"default":null},"#,
    r#"{"name":"osf","type":["null","boolean"],"default":null},"#,
    r#"{"name":"rnf","type":["null","boolean"],"default":null}"#,
    r#"]}"#
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_agree_on_columns() {
        let arrow = arrow_schema();
        let names: Vec<&str> = arrow.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, COLUMNS);

        let avro = apache_avro::Schema::parse_str(AVRO_SCHEMA_JSON).expect("valid Avro schema");
        let apache_avro::Schema::Record(record) = avro else {
            panic!("not a record schema");
        };
        let avro_names: Vec<&str> = record.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(avro_names, COLUMNS);
    }
}
