// Asio (with its SSL layer) and Beast, compiled once for the whole project (separate
// compilation keeps every other translation unit free of their implementation).
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
