#include "proxy/net/io_buffer.h"

#include <algorithm>
#include <cstring>

namespace sluice::proxy {

BufferPool::~BufferPool() {
    for (char* b : free_) delete[] b;
    for (char* b : small_free_) delete[] b;
}

char* BufferPool::take(std::vector<char*>& list, std::size_t size) {
    if (list.empty()) return new char[size];
    char* b = list.back();
    list.pop_back();
    return b;
}

void BufferPool::give(std::vector<char*>& list, char* block) {
    if (list.size() >= max_free_) {
        delete[] block;
        return;
    }
    list.push_back(block);
}

boost::asio::mutable_buffer IoBuffer::prepare(std::size_t min) {
    if (!data_) {
        if (start_small_ && min <= BufferPool::kSmallBlockSize) {
            data_ = pool_->take_small();
            cap_ = BufferPool::kSmallBlockSize;
        } else if (min <= BufferPool::kBlockSize) {
            data_ = pool_->take();
            cap_ = BufferPool::kBlockSize;
        } else {
            data_ = new char[min];
            cap_ = min;
        }
        begin_ = end_ = 0;
    } else if (cap_ - end_ < min) {
        std::size_t used = size();
        if (used + min <= cap_) {
            std::memmove(data_, data_ + begin_, used);  // compact
        } else {
            // A small block moves to a large one; a large one doubles.
            std::size_t grown = cap_ == BufferPool::kSmallBlockSize && used + min <= BufferPool::kBlockSize
                                    ? BufferPool::kBlockSize
                                    : std::max(cap_ * 2, used + min);
            char* bigger = grown == BufferPool::kBlockSize ? pool_->take() : new char[grown];
            std::memcpy(bigger, data_ + begin_, used);
            drop_storage();
            data_ = bigger;
            cap_ = grown;
        }
        begin_ = 0;
        end_ = used;
    }
    return {data_ + end_, cap_ - end_};
}

void IoBuffer::consume(std::size_t n) {
    begin_ += std::min(n, size());
    if (begin_ == end_) begin_ = end_ = 0;
}

void IoBuffer::release_if_empty() {
    if (empty()) drop_storage();
}

void IoBuffer::drop_storage() {
    if (!data_) return;
    if (cap_ == BufferPool::kBlockSize) pool_->give(data_);
    else if (cap_ == BufferPool::kSmallBlockSize) pool_->give_small(data_);
    else delete[] data_;
    data_ = nullptr;
    cap_ = begin_ = end_ = 0;
}

}  // namespace sluice::proxy
