// SPDX-License-Identifier: GPL-2.0
/*
 * hello: the lab's starting point for a kernel module. A parameter, a /proc entry and the
 * kernel log: `make module M=examples/hello && make insmod M=examples/hello`, then in the
 * guest `cat /proc/hello`.
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>

static char *whom = "lab";
module_param(whom, charp, 0444);
MODULE_PARM_DESC(whom, "who to greet");

static int times = 1;
module_param(times, int, 0644);
MODULE_PARM_DESC(times, "how many greetings /proc/hello shows");

static int hello_show(struct seq_file *m, void *v)
{
	int i;

	for (i = 0; i < times; i++)
		seq_printf(m, "hello, %s\n", whom);
	return 0;
}

static int __init hello_init(void)
{
	if (!proc_create_single("hello", 0444, NULL, hello_show))
		return -ENOMEM;
	pr_info("hello: loaded, greeting %s\n", whom);
	return 0;
}

static void __exit hello_exit(void)
{
	remove_proc_entry("hello", NULL);
	pr_info("hello: unloaded\n");
}

module_init(hello_init);
module_exit(hello_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("The labrun lab's first module");
