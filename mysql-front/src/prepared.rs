//! Prepared statements (COM_STMT_*). Statements are prepared on the server
//! side as far as the protocol goes; on execution the bound parameters are
//! substituted into the statement as quoted literals and the statement runs
//! like any other, with rows returned in the binary protocol.

use std::collections::HashMap;

use mysql_common::constants::{ColumnFlags, ColumnType};
use mysql_common::io::ParseBuf;
use mysql_common::value::{BinValue, Value, ValueDeserializer};

use crate::split::{placeholders, substitute};
use crate::wire::codes::{ER_WRONG_ARGUMENTS, MyError, S_HY000};
use crate::wire::resultset::ColumnInfo;

pub struct PreparedStatement {
    pub sql: String,
    pub positions: Vec<usize>,
    /// Parameter types from the last execute that sent them.
    pub types: Vec<(ColumnType, ColumnFlags)>,
    /// Data sent with COM_STMT_SEND_LONG_DATA, per parameter.
    pub long_data: HashMap<u16, Vec<u8>>,
    /// Result columns known at prepare time (may be empty).
    pub columns: Vec<ColumnInfo>,
}

impl PreparedStatement {
    pub fn new(sql: &str) -> Self {
        Self {
            sql: sql.to_string(),
            positions: placeholders(sql),
            types: Vec::new(),
            long_data: HashMap::new(),
            columns: Vec::new(),
        }
    }

    pub fn num_params(&self) -> usize {
        self.positions.len()
    }

    /// The statement with every placeholder replaced by NULL: used to learn
    /// the result columns at prepare time.
    pub fn with_nulls(&self) -> String {
        substitute(&self.sql, &self.positions, &vec![Value::NULL; self.positions.len()])
    }

    /// Decodes a COM_STMT_EXECUTE body (after the statement id, flags and
    /// iteration count) and returns the SQL to run.
    pub fn bind(&mut self, body: &[u8]) -> Result<String, MyError> {
        let n = self.num_params();
        if n == 0 {
            return Ok(self.sql.clone());
        }
        let bad = || MyError::new(ER_WRONG_ARGUMENTS, S_HY000, "Incorrect arguments to mysqld_stmt_execute");
        let mut buf = ParseBuf(body);
        let bitmap = buf.checked_eat(n.div_ceil(8)).ok_or_else(bad)?.to_vec();
        let bound = buf.checked_eat_u8().ok_or_else(bad)?;
        if bound == 1 {
            let mut types = Vec::with_capacity(n);
            for _ in 0..n {
                let t = buf.checked_eat_u8().ok_or_else(bad)?;
                let f = buf.checked_eat_u8().ok_or_else(bad)?;
                let ty = ColumnType::try_from(t).map_err(|_| bad())?;
                let flags = if f & 0x80 != 0 { ColumnFlags::UNSIGNED_FLAG } else { ColumnFlags::empty() };
                types.push((ty, flags));
            }
            self.types = types;
        }
        if self.types.len() != n {
            return Err(bad());
        }
        let mut values = Vec::with_capacity(n);
        for i in 0..n {
            if let Some(data) = self.long_data.get(&(i as u16)) {
                values.push(Value::Bytes(data.clone()));
                continue;
            }
            if bitmap[i / 8] & (1 << (i % 8)) != 0 {
                values.push(Value::NULL);
                continue;
            }
            let (ty, flags) = self.types[i];
            let v: ValueDeserializer<BinValue> = buf.parse((ty, flags)).map_err(|_| bad())?;
            values.push(v.0);
        }
        self.long_data.clear();
        Ok(substitute(&self.sql, &self.positions, &values))
    }
}
