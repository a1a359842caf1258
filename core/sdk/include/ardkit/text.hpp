#pragma once
#include <string>
#include <vector>

#include "ardkit/export.hpp"

namespace ardkit {

// Edit distance, used to suggest the nearest valid key or plugin name in error messages.
ARDKIT_API size_t edit_distance(const std::string& a, const std::string& b);

// The candidate closest to `word`, or "" when nothing is close enough to be a plausible typo.
ARDKIT_API std::string nearest(const std::string& word, const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" or "" — ready to append to a message.
ARDKIT_API std::string did_you_mean(const std::string& word,
                                    const std::vector<std::string>& candidates);

ARDKIT_API std::string join(const std::vector<std::string>& items, const std::string& separator);

// Pieces of `text` between separators (empty pieces kept).
ARDKIT_API std::vector<std::string> split(const std::string& text, char separator);

}  // namespace ardkit
