import Glibc
import LabrunKit

exit(LabrunCLI.main(Array(CommandLine.arguments.dropFirst())))
