//! Date and time formats in MySQL's `STR_TO_DATE` notation (`%d/%m/%Y`,
//! `%Y-%m-%d %H:%i:%s.%f`, `%M %e, %Y`, `%r`), as HeatWave's
//! `date_format`, `time_format` and `timestamp_format` take them.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Literal(u8),
    Space,
    Year4,
    Year2,
    Month,
    MonthName,
    MonthAbbr,
    Day,
    DaySuffixed,
    DayOfYear,
    Hour24,
    Hour12,
    Minute,
    Second,
    Micros,
    AmPm,
    WeekdayName,
    WeekdayAbbr,
}

/// A parsed format string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    items: Vec<Item>,
    text: String,
}

const MONTHS: [&str; 12] = [
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december",
];
const WEEKDAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

impl Format {
    pub fn parse(text: &str) -> Result<Format, String> {
        let mut items = Vec::new();
        let mut bytes = text.bytes();
        while let Some(b) = bytes.next() {
            if b != b'%' {
                items.push(if b == b' ' { Item::Space } else { Item::Literal(b) });
                continue;
            }
            let Some(spec) = bytes.next() else { return Err(format!("format '{text}' ends with '%'")) };
            match spec {
                b'Y' => items.push(Item::Year4),
                b'y' => items.push(Item::Year2),
                b'm' | b'c' => items.push(Item::Month),
                b'M' => items.push(Item::MonthName),
                b'b' => items.push(Item::MonthAbbr),
                b'd' | b'e' => items.push(Item::Day),
                b'D' => items.push(Item::DaySuffixed),
                b'j' => items.push(Item::DayOfYear),
                b'H' | b'k' => items.push(Item::Hour24),
                b'h' | b'I' | b'l' => items.push(Item::Hour12),
                b'i' => items.push(Item::Minute),
                b's' | b'S' => items.push(Item::Second),
                b'f' => items.push(Item::Micros),
                b'p' => items.push(Item::AmPm),
                b'W' => items.push(Item::WeekdayName),
                b'a' => items.push(Item::WeekdayAbbr),
                b'T' => items.extend([Item::Hour24, Item::Literal(b':'), Item::Minute, Item::Literal(b':'), Item::Second]),
                b'r' => items.extend([
                    Item::Hour12,
                    Item::Literal(b':'),
                    Item::Minute,
                    Item::Literal(b':'),
                    Item::Second,
                    Item::Space,
                    Item::AmPm,
                ]),
                b'%' => items.push(Item::Literal(b'%')),
                other => return Err(format!("format '{text}': unknown specifier '%{}'", other as char)),
            }
        }
        Ok(Format { items, text: text.to_string() })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The date and time a value holds; None when it does not match.
    pub fn read(&self, value: &str) -> Option<NaiveDateTime> {
        let s = value.trim().as_bytes();
        let mut pos = 0usize;
        let (mut year, mut month, mut day, mut yday) = (None::<i32>, 1u32, 1u32, None::<u32>);
        let (mut hour, mut minute, mut second, mut micros, mut pm) = (0u32, 0u32, 0u32, 0u32, None::<bool>);
        let number = |pos: &mut usize, max: usize| -> Option<u32> {
            let start = *pos;
            while *pos < s.len() && *pos - start < max && s[*pos].is_ascii_digit() {
                *pos += 1;
            }
            (start < *pos).then(|| std::str::from_utf8(&s[start..*pos]).ok()?.parse().ok())?
        };
        let word = |pos: &mut usize, names: &[&str], abbreviated: bool| -> Option<usize> {
            let rest = std::str::from_utf8(&s[*pos..]).ok()?.to_ascii_lowercase();
            names.iter().enumerate().find_map(|(i, n)| {
                let n = if abbreviated { &n[..3] } else { n };
                rest.starts_with(n).then(|| {
                    *pos += n.len();
                    i
                })
            })
        };
        for item in &self.items {
            match *item {
                Item::Literal(c) => {
                    if s.get(pos) != Some(&c) {
                        return None;
                    }
                    pos += 1;
                }
                Item::Space => {
                    let start = pos;
                    while s.get(pos).is_some_and(|b| b.is_ascii_whitespace()) {
                        pos += 1;
                    }
                    if start == pos {
                        return None;
                    }
                }
                Item::Year4 => year = Some(number(&mut pos, 4)? as i32),
                Item::Year2 => {
                    let y = number(&mut pos, 2)? as i32;
                    year = Some(if y < 70 { 2000 + y } else { 1900 + y });
                }
                Item::Month => month = number(&mut pos, 2)?,
                Item::MonthName => month = word(&mut pos, &MONTHS, false)? as u32 + 1,
                Item::MonthAbbr => month = word(&mut pos, &MONTHS, true)? as u32 + 1,
                Item::Day => day = number(&mut pos, 2)?,
                Item::DaySuffixed => {
                    day = number(&mut pos, 2)?;
                    let suffix = s.get(pos..pos + 2)?.to_ascii_lowercase();
                    if !matches!(&suffix[..], b"st" | b"nd" | b"rd" | b"th") {
                        return None;
                    }
                    pos += 2;
                }
                Item::DayOfYear => yday = Some(number(&mut pos, 3)?),
                Item::Hour24 => hour = number(&mut pos, 2)?,
                Item::Hour12 => {
                    hour = number(&mut pos, 2)?;
                    if !(1..=12).contains(&hour) {
                        return None;
                    }
                }
                Item::Minute => minute = number(&mut pos, 2)?,
                Item::Second => second = number(&mut pos, 2)?,
                Item::Micros => {
                    let start = pos;
                    let digits = number(&mut pos, 6)?;
                    micros = digits * 10u32.pow(6 - (pos - start) as u32);
                    // Digits past microseconds are dropped, as MySQL does.
                    while s.get(pos).is_some_and(u8::is_ascii_digit) {
                        pos += 1;
                    }
                }
                Item::AmPm => {
                    let w = s.get(pos..pos + 2)?.to_ascii_lowercase();
                    pm = Some(match &w[..] {
                        b"am" => false,
                        b"pm" => true,
                        _ => return None,
                    });
                    pos += 2;
                }
                Item::WeekdayName => {
                    word(&mut pos, &WEEKDAYS, false)?;
                }
                Item::WeekdayAbbr => {
                    word(&mut pos, &WEEKDAYS, true)?;
                }
            }
        }
        if pos != s.len() {
            return None;
        }
        if let Some(pm) = pm {
            hour = match (hour, pm) {
                (12, false) => 0,
                (12, true) => 12,
                (h, true) => h + 12,
                (h, false) => h,
            };
        }
        let year = year.unwrap_or(2000);
        let date = match yday {
            Some(n) => NaiveDate::from_yo_opt(year, n)?,
            None => NaiveDate::from_ymd_opt(year, month, day)?,
        };
        let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micros)?;
        Some(date.and_time(time))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(f: &str, v: &str) -> Option<String> {
        Format::parse(f).unwrap().read(v).map(|d| d.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
    }

    #[test]
    fn mysql_specifiers() {
        assert_eq!(read("%d/%m/%Y", "31/12/1999").as_deref(), Some("1999-12-31 00:00:00.000000"));
        assert_eq!(read("%e.%c.%y", "1.2.03").as_deref(), Some("2003-02-01 00:00:00.000000"));
        assert_eq!(read("%M %e, %Y", "February 29, 2024").as_deref(), Some("2024-02-29 00:00:00.000000"));
        assert_eq!(read("%b %D %Y", "feb 3rd 2024").as_deref(), Some("2024-02-03 00:00:00.000000"));
        assert_eq!(read("%Y-%m-%d %H:%i:%s.%f", "2024-01-02 03:04:05.5").as_deref(), Some("2024-01-02 03:04:05.500000"));
        assert_eq!(read("%r", "12:30:00 AM").as_deref(), Some("2000-01-01 00:30:00.000000"));
        assert_eq!(read("%Y%m%d%T", "20240102 23:59:59").as_deref(), None, "a literal space is required");
        assert_eq!(read("%Y%m%d %T", "20240102 23:59:59").as_deref(), Some("2024-01-02 23:59:59.000000"));
        assert_eq!(read("%Y-%j", "2023-365").as_deref(), Some("2023-12-31 00:00:00.000000"));
        assert_eq!(read("%d/%m/%Y", "30/02/2024"), None, "no such day");
        assert_eq!(read("%d/%m/%Y", "01/01/2024x"), None, "trailing text");
        assert!(Format::parse("%Q").is_err());
    }
}
