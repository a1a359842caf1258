// The PyTorch file reader on what torch.save writes: the zip format (data.pkl plus tensor
// records) and the legacy format (magic, protocol, sys info pickles, then storages), through
// the pickle interpreter. It must refuse, in one line, anything it cannot read, and never run
// what a file names (the pickle interpreter knows a fixed list of torch names).
#include <ardkit/pytorch_file.hpp>

#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto file = fuzz::write(fuzz::scratch() / "weights.pt",
                                std::string_view(reinterpret_cast<const char*>(data), size));
  fuzz::expect_clean([&] {
    const ardkit::StateDict state = ardkit::read_pytorch_state_dict(file, {});
    for (const auto& [name, tensor] : state)  // every tensor is readable to its end
      if (tensor.numel() > 0)
        (void)tensor.sum().item<double>();
  });
  return 0;
}
