// UTC calendar arithmetic for SigV4 dates, API timestamps and `--since` dates.

extension String {
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}

/// A UTC instant as SigV4 writes it (`20130524T000000Z`, date part `20130524`), converted
/// with a few integer operations (Hinnant's civil-date algorithms) rather than a calendar
/// object: it runs on every presign and every upload check.
struct UTCTimestamp {
    let epochSeconds: Int

    init(epochSeconds: Int) { self.epochSeconds = epochSeconds }

    /// Parses `YYYYMMDDTHHMMSSZ`.
    init?(amzDate: String) {
        let bytes = Array(amzDate.utf8)
        guard bytes.count == 16, bytes[8] == UInt8(ascii: "T"), bytes[15] == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for byte in bytes[range] {
                guard byte >= 0x30, byte <= 0x39 else { return nil }
                value = value * 10 + Int(byte - 0x30)
            }
            return value
        }
        guard let year = number(0..<4), let month = number(4..<6), let day = number(6..<8), let hour = number(9..<11),
            let minute = number(11..<13), let second = number(13..<15), (1...12).contains(month), (1...31).contains(day),
            hour < 24, minute < 60, second < 60
        else { return nil }
        epochSeconds = Self.daysFromCivil(year: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60 + second
        guard self.amzDate == amzDate else { return nil }
    }

    var amzDate: String {
        let (year, month, day) = Self.civilFromDays(epochSeconds.floorDiv(86_400))
        let seconds = epochSeconds - epochSeconds.floorDiv(86_400) * 86_400
        return "\(year)" + [month, day].map { String($0).leftPadded(to: 2) }.joined() + "T"
            + [seconds / 3600, seconds % 3600 / 60, seconds % 60].map { String($0).leftPadded(to: 2) }.joined() + "Z"
    }

    var date: String { String(amzDate.prefix(8)) }

    // Howard Hinnant's days-from-civil algorithms (proleptic Gregorian calendar).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = y.floorDiv(400)
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func civilFromDays(_ days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = z.floorDiv(146_097)
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

extension Int {
    func floorDiv(_ divisor: Int) -> Int { (self >= 0 ? self : self - divisor + 1) / divisor }
}

/// RFC 3339 / ISO 8601 UTC text (`2026-11-24T04:45:50Z`) without a calendar library.
public func iso8601UTC(epochSeconds: Int) -> String {
    let compact = UTCTimestamp(epochSeconds: epochSeconds).amzDate
    let c = Array(compact)
    return String(c[0..<4]) + "-" + String(c[4..<6]) + "-" + String(c[6..<8]) + "T" + String(c[9..<11]) + ":" + String(c[11..<13]) + ":"
        + String(c[13..<15]) + "Z"
}

/// Midnight UTC of a `YYYY-MM-DD` date as epoch seconds; nil when it is not a real date.
public func epochSeconds(isoDate: String) -> Int? {
    let compact = isoDate.split(separator: "-", omittingEmptySubsequences: false)
    guard compact.count == 3, compact[0].count == 4, compact[1].count == 2, compact[2].count == 2 else { return nil }
    return UTCTimestamp(amzDate: compact.joined() + "T000000Z")?.epochSeconds
}

/// An HTTP date (RFC 9110's IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`), as tus's
/// `Upload-Expires` carries it.
public func httpDate(epochSeconds: Int) -> String {
    let days = epochSeconds.floorDiv(86_400)
    let (year, month, day) = UTCTimestamp.civilFromDays(days)
    let seconds = epochSeconds - days * 86_400
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7 + 7) % 7]
    let monthName = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][month - 1]
    let clock = [seconds / 3600, seconds % 3600 / 60, seconds % 60].map { String($0).leftPadded(to: 2) }.joined(separator: ":")
    return "\(weekday), \(String(day).leftPadded(to: 2)) \(monthName) \(year) \(clock) GMT"
}
