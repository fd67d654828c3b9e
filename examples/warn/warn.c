// SPDX-License-Identifier: GPL-2.0
/*
 * warn: a module whose init hits a WARN_ON, to see what labrun does with a kernel warning
 * (a "[labrun] the guest kernel reported: WARNING in warn_init" line, `labrun status`,
 * `labrun log --reports`); the guest runs on. `make module M=examples/warn && make insmod M=examples/warn`.
 */
#include <linux/bug.h>
#include <linux/init.h>
#include <linux/module.h>

static int trigger = 1;
module_param(trigger, int, 0444);

static int __init warn_init(void)
{
	WARN_ON(trigger);
	return 0;
}

static void __exit warn_exit(void)
{
}

module_init(warn_init);
module_exit(warn_exit);
MODULE_LICENSE("GPL");
