/// The release this build is: printed by `--version` of `cameoctl` and `cameo-fcgi`, and the
/// Debian package's version. Raised by hand at each release (YYYY.MM.PATCH).
public enum CameoVersion {
    public static let current = "2026.12.2"
}
