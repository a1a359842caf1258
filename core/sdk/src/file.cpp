#include "ardkit/file.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "ardkit/error.hpp"

namespace fs = std::filesystem;

namespace ardkit {

namespace {

// One line that names the file, the cause and the fix; the temporary file is gone and the
// previous PATH untouched.
[[noreturn]] void write_failed(const fs::path& path, const fs::path& tmp, int error) {
  std::error_code ignored;
  fs::remove(tmp, ignored);
  const bool full = error == ENOSPC || error == EDQUOT || error == EFBIG;
  throw_runtime_error(fmt::format(
      "cannot write {}: {}; {} and re-run (the previous file, if any, is unchanged)", path.string(),
      std::strerror(error), full ? "free disk space" : "check the folder exists and is writable"));
}

}  // namespace

void write_file_atomic(const fs::path& path, const std::string& content) {
  const fs::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    write_failed(path, tmp, errno);
  size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      write_failed(path, tmp, error);
    }
    written += static_cast<size_t>(n);
  }
  // Some file systems report a full disk only when the data is flushed: fsync and close count.
  if (::fsync(fd) != 0) {
    const int error = errno;
    ::close(fd);
    write_failed(path, tmp, error);
  }
  if (::close(fd) != 0)
    write_failed(path, tmp, errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    write_failed(path, tmp, errno);
  // The rename lives in the folder's entry table: without this fsync a power cut can bring back
  // the old file (or none) after the caller was told the new one is safe. Past the rename the new
  // file is in place, so a folder that cannot be synced (some network file systems) is not an
  // error.
  const fs::path parent = path.has_parent_path() ? path.parent_path() : fs::path(".");
  if (const int dir = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

std::string file_sha256(const fs::path& path) {
  using Stamp = std::tuple<std::string, uintmax_t, fs::file_time_type>;
  static std::mutex mutex;
  static std::map<Stamp, std::string> known;  // a teacher file is hashed once per process
  std::error_code ec;
  const Stamp stamp{fs::absolute(path).string(), fs::file_size(path, ec),
                    fs::last_write_time(path, ec)};
  if (ec)
    throw_config_error(fmt::format("{}: cannot read the file to hash it ({}); check the path",
                                   path.string(), ec.message()));
  {
    const std::lock_guard<std::mutex> lock(mutex);
    if (const auto it = known.find(stamp); it != known.end())
      return it->second;
  }
  std::ifstream in(path, std::ios::binary);
  const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(),
                                                                        &EVP_MD_CTX_free);
  if (!in || !context || EVP_DigestInit_ex(context.get(), EVP_sha256(), nullptr) != 1)
    throw_runtime_error(fmt::format("{}: cannot open the file to hash it", path.string()));
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    if (in.gcount() > 0)
      EVP_DigestUpdate(context.get(), buffer.data(), static_cast<size_t>(in.gcount()));
  }
  if (in.bad())
    throw_runtime_error(fmt::format("{}: reading the file failed while hashing it", path.string()));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_DigestFinal_ex(context.get(), digest, &size);
  std::string hex;
  for (unsigned int i = 0; i < size; ++i)
    hex += fmt::format("{:02x}", digest[i]);
  const std::lock_guard<std::mutex> lock(mutex);
  known[stamp] = hex;
  return hex;
}

}  // namespace ardkit
