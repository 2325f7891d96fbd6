#include "recovery/journal.hpp"

namespace cb::recovery {

std::string_view to_string(JournalHealth::State s) {
    switch (s) {
        case JournalHealth::State::ok:
            return "ok";
        case JournalHealth::State::retrying:
            return "retrying";
        case JournalHealth::State::lost:
            return "lost";
    }
    return "?";
}

}  // namespace cb::recovery
