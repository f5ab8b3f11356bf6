//! A table (`export::Column`s) as an Apache Parquet file, for `results export --format
//! parquet`: one optional column per table column (INT64, DOUBLE, BOOLEAN, or UTF-8 text),
//! Snappy-compressed, in row groups of `ROW_GROUP` rows. Written with the `parquet` crate's
//! low-level writer (no Arrow): pandas, polars, DuckDB and pyarrow read it as they read any.

use std::io::Write;
use std::sync::Arc;

use parquet::basic::{Compression, ConvertedType, Repetition, Type as Physical};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DataType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedColumnWriter, SerializedFileWriter};
use parquet::schema::types::Type;

use super::export::{Cells, Column, Table};

/// Rows per row group: a reader's unit of parallel work; 1 M requests make 8.
const ROW_GROUP: usize = 128 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("writing Parquet: {0}")]
pub struct ParquetError(#[from] parquet::errors::ParquetError);

fn schema(columns: &[Column]) -> Result<Type, ParquetError> {
    let fields = columns
        .iter()
        .map(|c| {
            let (physical, utf8) = match c.cells {
                Cells::Int(_) => (Physical::INT64, false),
                Cells::Float(_) => (Physical::DOUBLE, false),
                Cells::Bool(_) => (Physical::BOOLEAN, false),
                Cells::Text(_) => (Physical::BYTE_ARRAY, true),
            };
            let t = Type::primitive_type_builder(&c.name, physical)
                .with_repetition(Repetition::OPTIONAL);
            let t = match utf8 {
                true => t.with_converted_type(ConvertedType::UTF8),
                false => t,
            };
            Ok(Arc::new(t.build()?))
        })
        .collect::<Result<Vec<_>, ParquetError>>()?;
    Ok(Type::group_type_builder("llm_inf_bench")
        .with_fields(fields)
        .build()?)
}

/// The present values of `cells` and every row's definition level (1 present, 0 null).
fn levels<T: Clone>(cells: &[Option<T>]) -> (Vec<T>, Vec<i16>) {
    let values = cells.iter().flatten().cloned().collect();
    let defs = cells.iter().map(|c| i16::from(c.is_some())).collect();
    (values, defs)
}

/// Writes one column chunk: the present values, and every row's definition level.
fn put<T: DataType>(
    col: &mut SerializedColumnWriter<'_>,
    cells: &[Option<T::T>],
) -> Result<(), ParquetError> {
    let (values, defs) = levels(cells);
    col.typed::<T>().write_batch(&values, Some(&defs), None)?;
    Ok(())
}

/// Writes `table` to `w` as one Parquet file (no row group when the table has no rows).
pub fn write<W: Write + Send>(table: &Table, w: W) -> Result<(), ParquetError> {
    write_in_groups(table, w, ROW_GROUP)
}

fn write_in_groups<W: Write + Send>(
    table: &Table,
    w: W,
    group_rows: usize,
) -> Result<(), ParquetError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by(format!("llm-inf-bench {}", env!("CARGO_PKG_VERSION")))
        .build();
    let schema = schema(&table.columns(0..0))?;
    let mut file = SerializedFileWriter::new(w, Arc::new(schema), Arc::new(props))?;
    for range in table.chunks(group_rows) {
        let mut group = file.next_row_group()?;
        for c in table.columns(range) {
            let Some(mut col) = group.next_column()? else {
                break;
            };
            match c.cells {
                Cells::Int(v) => put::<Int64Type>(&mut col, &v)?,
                // NaN and infinities are nulls, as in the CSV and the JSON.
                Cells::Float(v) => {
                    let finite: Vec<Option<f64>> =
                        v.iter().map(|x| x.filter(|x| x.is_finite())).collect();
                    put::<DoubleType>(&mut col, &finite)?
                }
                Cells::Bool(v) => put::<BoolType>(&mut col, &v)?,
                Cells::Text(v) => {
                    let bytes: Vec<Option<ByteArray>> = v
                        .iter()
                        .map(|s| s.as_deref().map(ByteArray::from))
                        .collect();
                    put::<ByteArrayType>(&mut col, &bytes)?
                }
            }
            col.close()?;
        }
        group.close()?;
    }
    file.close()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    use super::*;

    fn table() -> Vec<Column> {
        let col = |name: &str, cells| Column {
            name: name.into(),
            cells,
        };
        vec![
            col(
                "id",
                Cells::Int(vec![Some(1), Some(2), None, Some(4), Some(5)]),
            ),
            col(
                "ttft_ms",
                Cells::Float(vec![Some(1.5), None, Some(f64::NAN), Some(2.25), Some(0.0)]),
            ),
            col(
                "ok",
                Cells::Bool(vec![Some(true), Some(false), None, Some(true), Some(true)]),
            ),
            col(
                "error",
                Cells::Text(vec![
                    None,
                    Some("say \"hi\", twice".into()),
                    None,
                    Some("é".into()),
                    Some(String::new()),
                ]),
            ),
            col("adapter.a1.p99_ttft_ms", Cells::Float(vec![None; 5])),
        ]
    }

    fn read_back(bytes: Vec<u8>) -> (usize, Vec<Vec<(String, Field)>>) {
        let r = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        let groups = r.metadata().num_row_groups();
        let rows = r
            .get_row_iter(None)
            .unwrap()
            .map(|row| {
                row.unwrap()
                    .get_column_iter()
                    .map(|(n, f)| (n.clone(), f.clone()))
                    .collect()
            })
            .collect();
        (groups, rows)
    }

    #[test]
    fn a_table_reads_back_typed_with_its_nulls_across_row_groups() {
        let mut out = Vec::new();
        write_in_groups(&Table::from_columns(table()), &mut out, 2).unwrap();
        assert!(out.starts_with(b"PAR1") && out.ends_with(b"PAR1"));
        let (groups, rows) = read_back(out);
        assert_eq!(groups, 3, "5 rows in groups of 2");
        assert_eq!(rows.len(), 5);
        let names: Vec<&str> = rows[0].iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["id", "ttft_ms", "ok", "error", "adapter.a1.p99_ttft_ms"]
        );
        assert_eq!(rows[0][0].1, Field::Long(1));
        assert_eq!(rows[0][1].1, Field::Double(1.5));
        assert_eq!(rows[0][2].1, Field::Bool(true));
        assert_eq!(rows[0][3].1, Field::Null);
        assert_eq!(rows[1][1].1, Field::Null);
        assert_eq!(rows[1][3].1, Field::Str("say \"hi\", twice".into()));
        // NaN is a null, as in the CSV; a missing id stays missing.
        assert_eq!(rows[2][0].1, Field::Null);
        assert_eq!(rows[2][1].1, Field::Null);
        assert_eq!(rows[3][3].1, Field::Str("é".into()));
        assert_eq!(rows[4][3].1, Field::Str(String::new()));
        assert!(rows.iter().all(|r| r[4].1 == Field::Null));
    }

    #[test]
    fn an_empty_table_is_a_file_with_its_schema_and_no_rows() {
        let empty = vec![Column {
            name: "id".into(),
            cells: Cells::Int(vec![]),
        }];
        let mut out = Vec::new();
        write(&Table::from_columns(empty), &mut out).unwrap();
        let (groups, rows) = read_back(out);
        assert_eq!((groups, rows.len()), (0, 0));
    }
}
