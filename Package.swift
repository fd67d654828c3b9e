// swift-tools-version: 6.0
// labrun: a supervisor for the QEMU virtual machine of a kernel-development lab.
// No package dependencies: Foundation(Essentials) and Glibc from the toolchain only.
import PackageDescription

let package = Package(
    name: "labrun",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "labrun", targets: ["labrun"]),
        .library(name: "LabrunKit", targets: ["LabrunKit"]),
    ],
    targets: [
        .target(name: "LabrunKit"),
        .executableTarget(name: "labrun", dependencies: ["LabrunKit"]),
        // CrashReports/: real kernel reports read by the crash detector's tests (through #filePath).
        .testTarget(name: "LabrunKitTests", dependencies: ["LabrunKit"], exclude: ["CrashReports"]),
        // Boots the real tiny guest under QEMU (TCG). Needs `make guest` first;
        // each test skips with a reason when QEMU or the guest is absent.
        .testTarget(name: "IntegrationTests", dependencies: ["LabrunKit"]),
    ]
)
