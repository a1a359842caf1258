#pragma once
#include <filesystem>
#include <string>

#include "ardkit/export.hpp"

namespace ardkit {

// Writes `content` to `path` atomically: a temporary file in the same folder, flushed to disk,
// then renamed over the target. A crash leaves the old file or the new one, never half of one;
// a failure (a full disk, a missing folder) is one Error naming the file and the fix.
ARDKIT_API void write_file_atomic(const std::filesystem::path& path, const std::string& content);

// The SHA-256 of a file's bytes as 64 lowercase hex digits (what `sha256sum` prints), read in
// chunks; a file already hashed by this process, unchanged in size and time, is not read again.
ARDKIT_API std::string file_sha256(const std::filesystem::path& path);

}  // namespace ardkit
