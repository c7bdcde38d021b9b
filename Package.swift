// swift-tools-version: 6.1
//
// Cameo: avatar uploads behind nginx, served by short-lived FastCGI workers.
//
// Layout (one module per responsibility; C only in the thin wrapper modules):
//   C*            system-library targets for the Debian libraries, plus the only C we own:
//                 CSignals (async-signal-safe stop handling), CJPEGShim and CPNGShim (the
//                 setjmp of libjpeg and libpng), CLCMS2Shim (littlecms with a memory budget),
//                 CSockDiag (the kernel's socket queues)
//   CameoSystem   POSIX plumbing: files, directories, sockets, environment, stderr, clocks
//   FastCGI       libfcgi accept loop, request params, response writer
//   MariaDB       libmariadb connection and prepared statements
//   CameoCrypto   OpenSSL: SHA-256, HMAC, signature verification, random bytes
//   Imaging       sniffing, decoding (libjpeg/libpng/libwebp), resampling, WebP encoding
//   Scanning      clamd's INSTREAM protocol over its unix socket
//   CameoCore     pure Swift: config, the error catalogue, JWT, SigV4 presigning, JSON
//   MediaStore    the store seam: MediaStore protocol, records, the state machine's table
//   MariaDBStore  MediaStore on MariaDB (Galera-safe), and the migrator
//   CameoMetrics  the events workers and cameoctl report, and the datagram sink that sends them
//   MetricsCollector  sums those events for cameo-metrics, rendered with swift-prometheus
//   CameoService  routes, handlers, the upload pipeline, media files, maintenance; reaches the
//                 database only through MediaStore and C only through the wrapper modules
//
// docs/ARCHITECTURE.md has the module map and the rules; deploy/check-architecture checks them.
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

func systemLibrary(_ name: String, pkgConfig: String, apt: [String]) -> Target {
    .systemLibrary(name: name, pkgConfig: pkgConfig, providers: [.apt(apt)])
}

let package = Package(
    name: "Cameo",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "cameo-fcgi", targets: ["cameo-fcgi"]),
        .executable(name: "cameoctl", targets: ["cameoctl"]),
        .executable(name: "cameo-metrics", targets: ["cameo-metrics"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        systemLibrary("CFastCGI", pkgConfig: "fcgi", apt: ["libfcgi-dev"]),
        systemLibrary("CMariaDB", pkgConfig: "libmariadb", apt: ["libmariadb-dev"]),
        systemLibrary("COpenSSL", pkgConfig: "libcrypto", apt: ["libssl-dev"]),
        systemLibrary("CWebP", pkgConfig: "libwebp", apt: ["libwebp-dev"]),
        systemLibrary("CJPEG", pkgConfig: "libjpeg", apt: ["libjpeg-dev"]),
        systemLibrary("CPNG", pkgConfig: "libpng", apt: ["libpng-dev"]),
        systemLibrary("CLCMS2", pkgConfig: "lcms2", apt: ["liblcms2-dev"]),
        .target(name: "CSignals"),
        .target(name: "CJPEGShim", dependencies: ["CJPEG"]),
        .target(name: "CPNGShim", dependencies: ["CPNG"]),
        .target(name: "CLCMS2Shim", dependencies: ["CLCMS2"]),
        .target(name: "CSockDiag"),

        .target(
            name: "CameoSystem", dependencies: ["CSockDiag", .product(name: "SystemPackage", package: "swift-system")], swiftSettings: swiftSettings),
        .target(name: "FastCGI", dependencies: ["CFastCGI", "CSignals", "CameoSystem"], swiftSettings: swiftSettings),
        .target(name: "MariaDB", dependencies: ["CMariaDB"], swiftSettings: swiftSettings),
        .target(name: "CameoCrypto", dependencies: ["COpenSSL"], swiftSettings: swiftSettings),
        .target(
            name: "Imaging",
            dependencies: ["CWebP", "CJPEG", "CPNG", "CJPEGShim", "CPNGShim", "CLCMS2", "CLCMS2Shim"],
            swiftSettings: swiftSettings
        ),
        .target(name: "CameoCore", dependencies: ["CameoCrypto", "CameoSystem"], swiftSettings: swiftSettings),
        .target(name: "Scanning", dependencies: ["CameoSystem"], swiftSettings: swiftSettings),
        .target(name: "MediaStore", dependencies: ["CameoCore"], swiftSettings: swiftSettings),
        .target(name: "CameoMetrics", dependencies: ["CameoSystem"], swiftSettings: swiftSettings),
        .target(
            name: "MetricsCollector",
            dependencies: ["CameoMetrics", "CameoSystem", .product(name: "Prometheus", package: "swift-prometheus")],
            swiftSettings: swiftSettings),
        .target(name: "MariaDBStore", dependencies: ["MediaStore", "CameoCore", "MariaDB"], swiftSettings: swiftSettings),
        .target(
            name: "CameoService",
            dependencies: ["CameoCore", "CameoCrypto", "CameoSystem", "CameoMetrics", "MediaStore", "Imaging", "Scanning"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "cameo-fcgi", dependencies: ["CameoService", "CameoCore", "CameoSystem", "CameoMetrics", "MariaDBStore", "MariaDB", "FastCGI"],
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "cameoctl",
            dependencies: [
                "CameoService", "CameoCore", "CameoSystem", "CameoMetrics", "MediaStore", "MariaDBStore", "MariaDB",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "cameo-metrics", dependencies: ["MetricsCollector", "CameoMetrics", "CameoCore", "CameoSystem", "FastCGI"],
            swiftSettings: swiftSettings),
        .executableTarget(name: "cameo-imaging-bench", dependencies: ["Imaging", "CameoSystem"], swiftSettings: swiftSettings),

        .testTarget(name: "CameoCoreTests", dependencies: ["CameoCore", "CameoCrypto"], swiftSettings: swiftSettings),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging"], swiftSettings: swiftSettings),
        .testTarget(name: "ScanningTests", dependencies: ["Scanning"], swiftSettings: swiftSettings),
        .testTarget(name: "MetricsTests", dependencies: ["CameoMetrics", "MetricsCollector", "CameoSystem"], swiftSettings: swiftSettings),
        .target(
            name: "CameoTesting", dependencies: ["MediaStore", "CameoCore", "CameoCrypto", "CameoSystem", "CameoMetrics", "CameoService", "Scanning"],
            path: "Tests/CameoTesting",
            swiftSettings: swiftSettings),
        .testTarget(
            name: "CameoServiceTests", dependencies: ["CameoService", "CameoTesting", "MediaStore", "CameoCore", "CameoSystem", "CameoMetrics", "Imaging", "Scanning"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "MediaStoreTests", dependencies: ["MediaStore", "MariaDBStore", "MariaDB", "CameoTesting", "CameoCore", "CameoService", "CameoSystem"],
            swiftSettings: swiftSettings),
    ]
)
