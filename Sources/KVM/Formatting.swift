// Formatting: fixed-point numbers for what the VMM and `swiftlet compare` print (exit tables, doctor's
// speeds, boot timelines, comparison rows), without Foundation. It lives in the lowest Swift layer that
// both the VMM and the Compare module import.

/// `value` with `digits` digits after the point, rounded ("-" only when the rounded value is not zero).
public func fixed(_ value: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let negative = value < 0
    let scaled = (abs(value) * scale).rounded()
    guard scaled < 9e18 else { return "\(value)" }
    let n = UInt64(scaled)
    let whole = n / UInt64(scale), fraction = n % UInt64(scale)
    var s = (negative && n > 0 ? "-" : "") + String(whole)
    if digits > 0 {
        let f = String(fraction)
        s += "." + String(repeating: "0", count: digits - f.count) + f
    }
    return s
}
