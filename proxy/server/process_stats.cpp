#include "proxy/server/process_stats.h"

#include <sys/resource.h>
#include <unistd.h>

#include <dirent.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace sluice::proxy {

ProcessStats read_process_stats() {
    ProcessStats p;
    const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
    {
        std::ifstream in("/proc/self/stat");
        std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        // Fields after the command name, which may hold spaces: "(...) S ppid ...".
        auto close = stat.rfind(')');
        if (close != std::string::npos) {
            std::istringstream rest(stat.substr(close + 2));
            std::vector<std::string> f;
            for (std::string x; rest >> x;) f.push_back(x);
            // f[0] is field 3 (state): utime is field 14, stime 15, starttime 22.
            if (f.size() > 19) {
                p.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / tick;
                double boot = 0;
                std::ifstream s("/proc/stat");
                for (std::string line; std::getline(s, line);)
                    if (line.rfind("btime ", 0) == 0) boot = std::stod(line.substr(6));
                p.start_time = boot + std::stod(f[19]) / tick;
            }
        }
    }
    {
        std::ifstream in("/proc/self/statm");
        double size = 0, resident = 0;
        if (in >> size >> resident) {
            p.virtual_bytes = size * page;
            p.resident = resident * page;
        }
    }
    if (DIR* d = opendir("/proc/self/fd")) {
        int n = 0;
        while (dirent* e = readdir(d))
            if (e->d_name[0] != '.') ++n;
        closedir(d);
        p.open_fds = n - 1;  // not counting the directory we just read
    }
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) p.max_fds = static_cast<double>(rl.rlim_cur);
    return p;
}

}  // namespace sluice::proxy
