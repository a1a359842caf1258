#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "ardkit/export.hpp"

namespace ardkit {

// CRC-32C (Castagnoli), and the masked form that TFRecord framing stores (a CRC of data that
// itself holds CRCs would otherwise be weak): rotate right by 15, add 0xa282ead8.
ARDKIT_API uint32_t crc32c(const void* data, size_t size);
ARDKIT_API uint32_t masked_crc32c(const void* data, size_t size);

// One TensorBoard event file, written as TensorBoard reads it: TFRecord framing (the length as
// 8 little-endian bytes, the masked CRC-32C of those bytes, the serialized Event, its masked
// CRC-32C), the first record the file version. Every call writes whole records and flushes, so a
// TensorBoard watching the folder sees each one as it lands and a killed process leaves at most
// one cut record at the end (which TensorBoard skips).
class ARDKIT_API EventFileWriter {
 public:
  // Creates FOLDER/events.out.tfevents.<seconds>.<host>.<pid>.<n>.
  explicit EventFileWriter(const std::filesystem::path& folder);
  const std::filesystem::path& path() const {
    return path_;
  }
  // Scalars of one step in one event (tags as TensorBoard groups them: "train/loss").
  void scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values,
               double wall_time);
  // A PNG file's bytes as an image summary; its size and colour type come from its header.
  void image(const std::string& tag, int64_t step, const std::string& png, double wall_time);
  // Markdown for TensorBoard's text dashboard.
  void text(const std::string& tag, int64_t step, const std::string& markdown, double wall_time);

 private:
  void write_record(const std::string& bytes);
  std::filesystem::path path_;
  std::ofstream out_;
};

// Seconds since the epoch, as event files and metrics lines stamp their records.
ARDKIT_API double unix_seconds();

}  // namespace ardkit
