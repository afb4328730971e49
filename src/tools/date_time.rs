//! The `date_time` tool: today's date and time in the student's locale.
//!
//! The engine has no clock: the caller (the browser worker, from a JS `Date`) passes the
//! local date and time and the locale string (`navigator.language`), and this module only
//! checks and formats them: `Tuesday, March 4, 2025, 3:07 PM` for `en-US`, `mardi 4 mars
//! 2025, 15:07` for `fr`. Languages without their own format get the English names with a
//! 24-hour clock and the ISO date.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A date or time that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("date_time: {field} {value} is out of range for {year:04}-{month:02}")]
pub struct DateTimeError {
    /// The field that is out of range (`month`, `day`, `hour`, `minute`).
    pub field: &'static str,
    /// Its value.
    pub value: u32,
    /// The year given.
    pub year: i32,
    /// The month given.
    pub month: u32,
}

/// A local date and time as the student's device reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalDateTime {
    /// Year, e.g. 2025.
    pub year: i32,
    /// Month, 1–12.
    pub month: u32,
    /// Day of the month, 1–31.
    pub day: u32,
    /// Hour, 0–23.
    pub hour: u32,
    /// Minute, 0–59.
    pub minute: u32,
    /// BCP 47 locale, e.g. `en-US`, `de-DE`, `fr`.
    pub locale: String,
}

const WEEKDAYS_EN: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS_DE: [&str; 7] = [
    "Sonntag",
    "Montag",
    "Dienstag",
    "Mittwoch",
    "Donnerstag",
    "Freitag",
    "Samstag",
];
const MONTHS_DE: [&str; 12] = [
    "Januar",
    "Februar",
    "März",
    "April",
    "Mai",
    "Juni",
    "Juli",
    "August",
    "September",
    "Oktober",
    "November",
    "Dezember",
];
const WEEKDAYS_FR: [&str; 7] = [
    "dimanche", "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi",
];
const MONTHS_FR: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];
const WEEKDAYS_ES: [&str; 7] = [
    "domingo",
    "lunes",
    "martes",
    "miércoles",
    "jueves",
    "viernes",
    "sábado",
];
const MONTHS_ES: [&str; 12] = [
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
];

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl LocalDateTime {
    /// Checks that the date and time exist.
    pub fn validate(&self) -> Result<(), DateTimeError> {
        let err = |field, value| DateTimeError {
            field,
            value,
            year: self.year,
            month: self.month,
        };
        if !(1..=12).contains(&self.month) {
            return Err(err("month", self.month));
        }
        if self.day == 0 || self.day > days_in_month(self.year, self.month) {
            return Err(err("day", self.day));
        }
        if self.hour > 23 {
            return Err(err("hour", self.hour));
        }
        if self.minute > 59 {
            return Err(err("minute", self.minute));
        }
        Ok(())
    }

    /// Day of the week, 0 = Sunday (Sakamoto's method, proleptic Gregorian).
    pub fn weekday(&self) -> usize {
        const OFFSETS: [i32; 12] = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4];
        let month = self.month.clamp(1, 12) as usize;
        let y = if month < 3 { self.year - 1 } else { self.year };
        let d = self.day as i32;
        (y + y.div_euclid(4) - y.div_euclid(100) + y.div_euclid(400) + OFFSETS[month - 1] + d)
            .rem_euclid(7) as usize
    }

    /// `2025-03-04`.
    pub fn iso_date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// The date and time written as the locale writes them, after [`Self::validate`].
    pub fn format(&self) -> Result<String, DateTimeError> {
        self.validate()?;
        let locale = self.locale.to_ascii_lowercase().replace('_', "-");
        let language = locale.split('-').next().unwrap_or("");
        let (w, m) = (self.weekday(), self.month as usize - 1);
        let (d, y) = (self.day, self.year);
        let clock24 = format!("{:02}:{:02}", self.hour, self.minute);
        Ok(match language {
            "en" if locale == "en-us" || locale == "en" => {
                let (h12, half) = match self.hour {
                    0 => (12, "AM"),
                    h @ 1..=11 => (h, "AM"),
                    12 => (12, "PM"),
                    h => (h - 12, "PM"),
                };
                format!(
                    "{}, {} {d}, {y}, {h12}:{:02} {half}",
                    WEEKDAYS_EN[w], MONTHS_EN[m], self.minute
                )
            }
            "de" => format!("{}, {d}. {} {y}, {clock24}", WEEKDAYS_DE[w], MONTHS_DE[m]),
            "fr" => format!("{} {d} {} {y}, {clock24}", WEEKDAYS_FR[w], MONTHS_FR[m]),
            "es" => format!(
                "{}, {d} de {} de {y}, {clock24}",
                WEEKDAYS_ES[w], MONTHS_ES[m]
            ),
            _ => format!(
                "{} {d} {} {y}, {clock24} ({})",
                WEEKDAYS_EN[w],
                MONTHS_EN[m],
                self.iso_date()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(year: i32, month: u32, day: u32, hour: u32, minute: u32, locale: &str) -> LocalDateTime {
        LocalDateTime {
            year,
            month,
            day,
            hour,
            minute,
            locale: locale.into(),
        }
    }

    #[test]
    fn formats_per_locale() {
        let t = |locale| at(2025, 3, 4, 15, 7, locale).format().unwrap();
        assert_eq!(t("en-US"), "Tuesday, March 4, 2025, 3:07 PM");
        assert_eq!(t("de-DE"), "Dienstag, 4. März 2025, 15:07");
        assert_eq!(t("fr"), "mardi 4 mars 2025, 15:07");
        assert_eq!(t("es-MX"), "martes, 4 de marzo de 2025, 15:07");
        assert_eq!(t("en-GB"), "Tuesday 4 March 2025, 15:07 (2025-03-04)");
        assert_eq!(t("ja-JP"), "Tuesday 4 March 2025, 15:07 (2025-03-04)");
        assert_eq!(
            at(2024, 12, 31, 0, 5, "en-US").format().unwrap(),
            "Tuesday, December 31, 2024, 12:05 AM"
        );
    }

    #[test]
    fn weekdays_are_right() {
        assert_eq!(at(2000, 1, 1, 0, 0, "en").weekday(), 6); // Saturday
        assert_eq!(at(2024, 2, 29, 0, 0, "en").weekday(), 4); // Thursday
        assert_eq!(at(1970, 1, 1, 0, 0, "en").weekday(), 4); // Thursday
    }

    #[test]
    fn impossible_dates_are_errors() {
        let err = at(2023, 2, 29, 0, 0, "en").format().unwrap_err();
        assert_eq!(
            err.to_string(),
            "date_time: day 29 is out of range for 2023-02"
        );
        assert!(at(2024, 2, 29, 0, 0, "en").validate().is_ok());
        assert_eq!(
            at(2024, 13, 1, 0, 0, "en").validate().unwrap_err().field,
            "month"
        );
        assert_eq!(
            at(2024, 1, 1, 24, 0, "en").validate().unwrap_err().field,
            "hour"
        );
        assert_eq!(
            at(2024, 1, 1, 0, 60, "en").validate().unwrap_err().field,
            "minute"
        );
    }
}
