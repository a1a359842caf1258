#include "ardkit/host/event_file.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/crc.hpp>
#include <chrono>

#include "ardkit/error.hpp"
#include "tensorboard_event.pb.h"

namespace fs = std::filesystem;

namespace ardkit {

namespace tb = ardkit::tensorboard;

uint32_t crc32c(const void* data, size_t size) {
  // Polynomial 0x1EDC6F41, reflected in and out, initial and final XOR all ones (RFC 3720).
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(data, size);
  return crc.checksum();
}

uint32_t masked_crc32c(const void* data, size_t size) {
  const uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

namespace {

std::string host_name() {
  std::array<char, 256> name{};
  if (gethostname(name.data(), name.size() - 1) != 0)
    return "localhost";
  return name.data();
}

void put_le(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i)
    out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

// Width, height and TensorBoard's colorspace from a PNG's IHDR chunk (bytes 16-25).
struct PngHeader {
  int32_t width = 0, height = 0, colorspace = 0;
};

PngHeader png_header(const std::string& png) {
  static const std::string signature = "\x89PNG\r\n\x1a\n";
  if (png.size() < 26 || png.compare(0, signature.size(), signature) != 0 ||
      png.compare(12, 4, "IHDR") != 0)
    throw_runtime_error("event file: an image summary needs a PNG file's bytes");
  const auto be32 = [&](size_t at) {
    return static_cast<int32_t>(
        (static_cast<uint32_t>(static_cast<unsigned char>(png[at])) << 24) |
        (static_cast<uint32_t>(static_cast<unsigned char>(png[at + 1])) << 16) |
        (static_cast<uint32_t>(static_cast<unsigned char>(png[at + 2])) << 8) |
        static_cast<uint32_t>(static_cast<unsigned char>(png[at + 3])));
  };
  PngHeader h;
  h.width = be32(16);
  h.height = be32(20);
  switch (static_cast<unsigned char>(png[25])) {  // PNG colour type
    case 0:
      h.colorspace = 1;
      break;  // grayscale
    case 4:
      h.colorspace = 2;
      break;  // grayscale + alpha
    case 6:
      h.colorspace = 4;
      break;  // RGBA
    default:
      h.colorspace = 3;
      break;  // RGB, palette
  }
  return h;
}

}  // namespace

EventFileWriter::EventFileWriter(const fs::path& folder) {
  static std::atomic<int> files{0};
  fs::create_directories(folder);
  path_ =
      folder / fmt::format("events.out.tfevents.{}.{}.{}.{}", static_cast<int64_t>(unix_seconds()),
                           host_name(), static_cast<int64_t>(getpid()), files++);
  out_.open(path_, std::ios::binary | std::ios::trunc);
  if (!out_)
    throw_runtime_error(
        fmt::format("{}: cannot create the event file; check that the run "
                    "folder is writable",
                    path_.string()));
  tb::Event event;
  event.set_wall_time(unix_seconds());
  event.set_file_version("brain.Event:2");
  write_record(event.SerializeAsString());
}

void EventFileWriter::write_record(const std::string& bytes) {
  std::string record;
  record.reserve(bytes.size() + 16);
  put_le(record, bytes.size(), 8);
  put_le(record, masked_crc32c(record.data(), 8), 4);
  record += bytes;
  put_le(record, masked_crc32c(bytes.data(), bytes.size()), 4);
  out_.write(record.data(), static_cast<std::streamsize>(record.size()));
  out_.flush();
  if (!out_)
    throw_runtime_error(
        fmt::format("{}: writing the event file failed (disk full?)", path_.string()));
}

void EventFileWriter::scalars(int64_t step,
                              const std::vector<std::pair<std::string, double>>& values,
                              double wall_time) {
  if (values.empty())
    return;
  tb::Event event;
  event.set_wall_time(wall_time);
  event.set_step(step);
  for (const auto& [tag, value] : values) {
    auto* v = event.mutable_summary()->add_value();
    v->set_tag(tag);
    v->set_simple_value(static_cast<float>(value));
  }
  write_record(event.SerializeAsString());
}

void EventFileWriter::image(const std::string& tag, int64_t step, const std::string& png,
                            double wall_time) {
  const PngHeader header = png_header(png);
  tb::Event event;
  event.set_wall_time(wall_time);
  event.set_step(step);
  auto* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  auto* image = v->mutable_image();
  image->set_height(header.height);
  image->set_width(header.width);
  image->set_colorspace(header.colorspace);
  image->set_encoded_image_string(png);
  write_record(event.SerializeAsString());
}

void EventFileWriter::text(const std::string& tag, int64_t step, const std::string& markdown,
                           double wall_time) {
  tb::Event event;
  event.set_wall_time(wall_time);
  event.set_step(step);
  auto* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  v->mutable_metadata()->mutable_plugin_data()->set_plugin_name("text");
  auto* tensor = v->mutable_tensor();
  tensor->set_dtype(7);            // DT_STRING
  tensor->mutable_tensor_shape();  // a scalar string: no dimensions
  tensor->add_string_val(markdown);
  write_record(event.SerializeAsString());
}

}  // namespace ardkit
