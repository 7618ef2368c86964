{ z = 10; here = toString ./.; }
