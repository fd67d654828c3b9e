// SPDX-License-Identifier: GPL-2.0
/* broken: a module that cannot load (it calls a function no kernel exports), to see the
 * kernel's reason: `make insmod M=examples/broken`. */
#include <linux/init.h>
#include <linux/module.h>

extern void labrun_no_such_function(void);

static int __init broken_init(void)
{
	labrun_no_such_function();
	return 0;
}

module_init(broken_init);
MODULE_LICENSE("GPL");
