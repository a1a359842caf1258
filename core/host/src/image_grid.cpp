#include "ardkit/host/image_grid.hpp"

#include <fmt/format.h>
#include <png.h>
#include <torch/torch.h>

#include <string>

#include "ardkit/error.hpp"
#include "ardkit/host/run_dir.hpp"

namespace fs = std::filesystem;

namespace ardkit {

void write_image_grid(const torch::Tensor& images, const fs::path& path, int64_t columns) {
  if (images.dim() != 4 || (images.size(1) != 1 && images.size(1) != 3))
    throw_runtime_error(fmt::format("{}: an image grid needs [N, 1 or 3, H, W] images, got {}",
                                    path.string(), c10::str(images.sizes())));
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  columns = std::max<int64_t>(1, std::min(columns, n));
  const int64_t rows = (n + columns - 1) / columns;
  const int64_t height = rows * (h + 1) + 1, width = columns * (w + 1) + 1;
  // [height, width, c] bytes, gaps left black.
  auto canvas = torch::zeros({height, width, c}, torch::kByte);
  const auto bytes = (images.detach().to(torch::kCPU, torch::kFloat).clamp(0, 1) * 255)
                         .round()
                         .to(torch::kByte)
                         .permute({0, 2, 3, 1});
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = i / columns, col = i % columns;
    canvas.narrow(0, 1 + r * (h + 1), h).narrow(1, 1 + col * (w + 1), w).copy_(bytes[i]);
  }
  canvas = canvas.contiguous();

  // Encoded in memory, then written atomically (a full disk is one line; no half image left).
  std::string encoded;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw_runtime_error(fmt::format("{}: libpng failed to encode the image grid", path.string()));
  }
  png_set_write_fn(
      png, &encoded,
      [](png_structp p, png_bytep data, png_size_t size) {
        static_cast<std::string*>(png_get_io_ptr(p))->append(reinterpret_cast<char*>(data), size);
      },
      nullptr);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8,
               c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  auto* data = canvas.data_ptr<uint8_t>();
  for (int64_t y = 0; y < height; ++y)
    png_write_row(png, data + y * width * c);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  write_file_atomic(path, encoded);
}

}  // namespace ardkit
