import Glibc

/// The absolute path with every symbolic link, `.` and `..` resolved, or nil when it does not
/// exist. The corresponding C function is `realpath`.
public func realPath(_ path: String) -> String? {
    guard let resolved = realpath(path, nil) else { return nil }
    defer { free(resolved) }
    return String(cString: resolved)
}

/// The target of a symbolic link, or nil. The corresponding C function is `readlink`.
func symbolicLinkTarget(_ path: String) -> String? {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    guard case .success(let n) = valueOrErrno({ readlink(path, &buffer, buffer.count - 1) }) else { return nil }
    return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// The names in a directory (without `.` and `..`), or nil when it cannot be read.
/// The corresponding C functions are `opendir` and `readdir`.
func directoryEntries(_ path: String) -> [String]? {
    guard let dir = opendir(path) else { return nil }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafePointer(to: &entry.pointee.d_name) {
            String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// True when `path` is a directory (following links).
public func isDirectory(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
}

/// mkdir -p with mode 0755; true when the directory exists afterwards.
@discardableResult
public func makeDirectory(_ path: String) -> Bool {
    if isDirectory(path) { return true }
    let parent = parentDirectory(path)
    if parent != path && !isDirectory(parent) { makeDirectory(parent) }
    _ = mkdir(path, 0o755)
    return isDirectory(path)
}

/// Renames a file (replacing the target). The corresponding C function is `rename`.
public func renameFile(_ from: String, _ to: String) throws(SystemCallError) {
    try nothingOrErrno { rename(from, to) }.get("rename \(from)")
}

/// Bytes free for this user on the file system holding `path`. The corresponding C function is `statvfs`.
public func freeBytes(onFileSystemOf path: String) -> UInt64? {
    var st = statvfs()
    guard statvfs(parentDirectory(path), &st) == 0 else { return nil }
    return UInt64(st.f_bavail) * UInt64(st.f_frsize)
}

/// Removes a file if present. The corresponding C function is `unlink`.
public func removeFile(_ path: String) {
    _ = unlink(path)
}

/// Removes an empty directory. The corresponding C function is `rmdir`.
@discardableResult
public func removeDirectory(_ path: String) -> Bool { rmdir(path) == 0 }

/// Removes a directory holding only files (labrun's own flat directories), then the directory.
public func removeFlatDirectory(_ path: String) {
    for name in directoryEntries(path) ?? [] { removeFile(path + "/" + name) }
    removeDirectory(path)
}

/// The names in a directory, or an empty list.
public func namesInDirectory(_ path: String) -> [String] { directoryEntries(path) ?? [] }
